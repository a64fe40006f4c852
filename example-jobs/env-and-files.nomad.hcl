# A template writes a file into /local; the module reads it, prints its
# NOMAD_* environment and writes a result into the allocation's shared
# /alloc/data.

variable "artifact_url" {
  type    = string
  default = "http://127.0.0.1:8700"
}

job "env-and-files" {
  type = "batch"

  group "files" {
    task "files" {
      driver = "wasm"

      artifact {
        source      = "${var.artifact_url}/files.wasm"
        destination = "local/"
      }

      template {
        destination = "local/greeting.txt"
        data        = "hello from a template in {{ env \"NOMAD_JOB_NAME\" }}\n"
      }

      config {
        module = "local/files.wasm"
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
