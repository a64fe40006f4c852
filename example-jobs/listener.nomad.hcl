# A web server in command mode: serve.wasm runs once, like any service,
# and serves HTTP on a socket the driver binds for it on the address and
# port Nomad allocated to the label "http". The guest finds the socket's
# file descriptor in WASM_LISTENER_HTTP (a guest cannot open sockets of
# its own under WASI preview 1).
#
#   curl http://ADDR:PORT/world   (nomad service info listener, or Consul)

variable "artifact_url" {
  type        = string
  default     = "http://127.0.0.1:8700"
  description = "Where the example modules are served."
}

variable "provider" {
  type        = string
  default     = "consul"
  description = "Where the service is registered: consul, or nomad for Nomad's own service discovery."
}

job "listener" {
  type = "service"

  group "web" {
    count = 1

    network {
      port "http" {}
    }

    service {
      name     = "listener"
      provider = var.provider
      port     = "http"
      tags     = ["wasm", "listener"]

      check {
        name     = "listener-health"
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
        listeners = ["http"] # port labels of the group's network block
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
