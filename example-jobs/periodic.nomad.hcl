# A periodic batch job: the hello module every minute.

variable "artifact_url" {
  type    = string
  default = "http://127.0.0.1:8700"
}

job "periodic" {
  type = "batch"

  periodic {
    crons            = ["*/1 * * * *"]
    prohibit_overlap = true
  }

  group "tick" {
    task "hello" {
      driver = "wasm"

      artifact {
        source      = "${var.artifact_url}/hello.wasm"
        destination = "local/"
      }

      config {
        module = "local/hello.wasm"
        args   = ["periodic run"]
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
