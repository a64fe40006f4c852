# A parameterized job: nomad job dispatch dispatch input.txt (or - for stdin)
# The payload reaches the module as a file: dispatch_payload writes it to
# local/input.txt, which the module sees as /local/input.txt.

variable "artifact_url" {
  type    = string
  default = "http://127.0.0.1:8700"
}

job "dispatch" {
  type = "batch"

  parameterized {
    payload = "required"
  }

  group "upper" {
    task "upper" {
      driver = "wasm"

      artifact {
        source      = "${var.artifact_url}/upper.wasm"
        destination = "local/"
      }

      dispatch_payload {
        file = "input.txt"
      }

      config {
        module = "local/upper.wasm"
        args   = ["/local/input.txt"]
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
