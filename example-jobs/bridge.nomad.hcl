# Bridge networking: each group gets a network namespace of its own, and
# Nomad maps a host port to the port "to" inside it. The driver binds the
# tasks' ports inside the namespace, on 0.0.0.0 and the "to" port.
#
# Group "listener": serve.wasm in command mode beside a Docker task that
# reaches it over the namespace's loopback (127.0.0.1:8080) and prints what
# it answered. The Docker driver creates this namespace (its infra
# container: the client's docker plugin names a local infra_image).
#
# Group "http": greet.wasm in http mode, in a namespace Nomad creates
# itself (no Docker task in the group).
#
# Needs the CNI plugins (Debian: containernetworking-plugins) and the
# client's cni_path = "/usr/lib/cni". The image wasm-e2e/sidecar:1 is built
# locally (make -C example-jobs image).

variable "artifact_url" {
  type        = string
  default     = "http://127.0.0.1:8700"
  description = "Where the example modules are served."
}

job "bridge" {
  type = "service"

  group "listener" {
    network {
      mode = "bridge"
      port "http" {
        to = 8080
      }
    }

    service {
      name = "bridge-listener"
      port = "http"

      check {
        name     = "bridge-listener-health"
        type     = "http"
        path     = "/health"
        interval = "2s"
        timeout  = "1s"
      }
    }

    task "serve" {
      driver = "wasm"

      artifact {
        source      = "${var.artifact_url}/serve.wasm"
        destination = "local/"
      }

      config {
        module    = "local/serve.wasm"
        listeners = ["http"]
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }

    task "client" {
      driver = "docker"

      config {
        image      = "wasm-e2e/sidecar:1"
        force_pull = false
        # Fetches until the Wasm task answers, prints the body, and stays up.
        args = ["get", "http://127.0.0.1:8080/from-docker"]
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }
  }

  group "http" {
    network {
      mode = "bridge"
      port "http" {
        to = 8080
      }
      port "metrics" {
        to = 9090
      }
    }

    service {
      name = "bridge-http"
      port = "http"

      check {
        name     = "bridge-http-health"
        type     = "http"
        path     = "/health"
        interval = "2s"
        timeout  = "1s"
      }
    }

    task "greet" {
      driver = "wasm"

      artifact {
        source      = "${var.artifact_url}/greet.wasm"
        destination = "local/"
      }

      config {
        module = "local/greet.wasm"

        http {
          port         = "http"
          metrics_port = "metrics"
          access_log   = true
        }
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
