# A web service in http mode (WAGI, CGI style): the driver serves the port
# labelled "http" and runs a fresh instance of greet.wasm per request, with
# the request in its environment and body on stdin, and its stdout as the
# response. Prometheus metrics are served on the port labelled "metrics",
# and a line per request goes to the task's stdout log.
#
#   curl http://ADDR:PORT/world   (nomad service info greet, or Consul)

variable "artifact_url" {
  type        = string
  default     = "http://127.0.0.1:8700"
  description = "Where the example modules are served."
}

variable "provider" {
  type        = string
  default     = "consul"
  description = "Where the services are registered: consul, or nomad for Nomad's own service discovery."
}

job "greet" {
  type = "service"

  group "web" {
    count = 1

    network {
      port "http" {}
      port "metrics" {}
    }

    service {
      name     = "greet"
      provider = var.provider
      port     = "http"
      tags     = ["wasm", "http"]

      check {
        name     = "greet-health"
        type     = "http"
        path     = "/health"
        interval = "2s"
        timeout  = "1s"
      }

      check {
        name     = "greet-tcp"
        type     = "tcp"
        interval = "2s"
        timeout  = "1s"
      }
    }

    service {
      name     = "greet-metrics"
      provider = var.provider
      port     = "metrics"
      tags     = ["metrics"]

      check {
        name     = "greet-metrics"
        type     = "http"
        path     = "/metrics"
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
          port            = "http"
          max_concurrency = 100       # instances at once; beyond, 503 after a short wait
          timeout         = "10s"     # per request; beyond, 504
          max_body_bytes  = 1048576   # beyond, 413
          metrics_port    = "metrics" # Prometheus text, any path
          access_log      = true      # a line per request in the stdout log
        }
      }

      resources {
        cpu    = 100
        memory = 32 # MiB per instance: the cap on each one's linear memory
      }
    }
  }
}
