# A Wasm service that calls out: visits.wasm, an HTTP handler (http mode, a
# fresh instance per request), calls the group's counter, a Docker task, on
# every request and prints what it got. The counter's address is the one
# Consul gives (a template renders it into UPSTREAM); the task's outbound
# rule allows exactly that address and port, within the node's ceiling
# (plugin config outbound { allow = [...] }). Any other destination is
# refused (EACCES) and reported as a task event.
#
# The image wasm-e2e/sidecar:1 is built locally (make -C example-jobs image).

variable "artifact_url" {
  type    = string
  default = "http://127.0.0.1:8700"
}

job "outbound" {
  type = "service"

  group "app" {
    network {
      port "web" {}
      port "counter" {}
    }

    service {
      name = "outbound-counter"
      port = "counter"

      check {
        type     = "http"
        path     = "/health"
        interval = "2s"
        timeout  = "1s"
      }
    }

    service {
      name = "outbound-visits"
      port = "web"

      check {
        type     = "http"
        path     = "/health"
        interval = "2s"
        timeout  = "1s"
      }
    }

    task "counter" {
      driver = "docker"

      config {
        image      = "wasm-e2e/sidecar:1"
        force_pull = false
        ports      = ["counter"]
        args       = ["count", "${NOMAD_PORT_counter}"]
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }

    task "visits" {
      driver = "wasm"

      artifact {
        source      = "${var.artifact_url}/visits.wasm"
        destination = "local/"
      }

      # The counter's address as Consul has it, once it is healthy.
      template {
        data        = "UPSTREAM={{ range service \"outbound-counter\" }}{{ .Address }}:{{ .Port }}{{ end }}\n"
        destination = "local/upstream.env"
        env         = true
      }

      config {
        module   = "local/visits.wasm"
        outbound = ["tcp://${NOMAD_IP_counter}:${NOMAD_PORT_counter}"]

        http {
          port = "web"
        }
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
