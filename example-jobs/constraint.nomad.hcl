# Runs only on nodes whose wasm driver compiles modules and offers WASI
# preview 1 with SIMD.

variable "artifact_url" {
  type    = string
  default = "http://127.0.0.1:8700"
}

job "constraint" {
  type = "batch"

  constraint {
    attribute = "${attr.driver.wasm.engine}"
    value     = "compiler"
  }

  constraint {
    attribute = "${attr.driver.wasm.wasi}"
    value     = "preview1"
  }

  constraint {
    attribute = "${attr.driver.wasm.feature.simd}"
    value     = "true"
  }

  group "hello" {
    task "hello" {
      driver = "wasm"

      artifact {
        source      = "${var.artifact_url}/hello.wasm"
        destination = "local/"
      }

      config {
        module = "local/hello.wasm"
        args   = ["a constrained node"]
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
