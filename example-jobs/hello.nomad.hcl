# A batch job: fetches its module with an artifact block, pinned by SHA-256,
# and prints a greeting. make demo serves example-jobs/build on artifact_url.

variable "artifact_url" {
  type        = string
  default     = "http://127.0.0.1:8700"
  description = "Where the example modules are served."
}

variable "hello_sha256" {
  type        = string
  description = "SHA-256 of hello.wasm, from example-jobs/build/SHA256SUMS."
}

job "hello" {
  type = "batch"

  group "hello" {
    task "hello" {
      driver = "wasm"

      artifact {
        source      = "${var.artifact_url}/hello.wasm"
        destination = "local/"
        options {
          checksum = "sha256:${var.hello_sha256}"
        }
      }

      config {
        module = "local/hello.wasm"
        args   = ["Nomad"]
        # The driver checks the digest again when it loads the module.
        sha256 = var.hello_sha256
      }

      resources {
        cpu    = 100
        memory = 32 # MiB; also the cap on the module's linear memory
      }
    }
  }
}
