# One group, Docker and WebAssembly side by side, sharing the allocation's
# /alloc: a prestart Docker task writes the input, the Wasm task transforms
# it, and a Docker sidecar runs beside the Wasm task until it is done. The
# image wasm-e2e/sidecar:1 is built locally (make -C example-jobs image).

variable "artifact_url" {
  type    = string
  default = "http://127.0.0.1:8700"
}

job "mixed" {
  type = "batch"

  group "pipeline" {
    task "produce" {
      driver = "docker"

      lifecycle {
        hook = "prestart"
      }

      config {
        image      = "wasm-e2e/sidecar:1"
        force_pull = false
        args       = ["write", "/alloc/data/input.txt", "written by a docker task"]
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }

    task "sidecar" {
      driver = "docker"

      lifecycle {
        hook    = "prestart"
        sidecar = true
      }

      config {
        image      = "wasm-e2e/sidecar:1"
        force_pull = false
        args       = ["heartbeat"]
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }

    task "transform" {
      driver = "wasm"

      artifact {
        source      = "${var.artifact_url}/upper.wasm"
        destination = "local/"
      }

      config {
        module = "local/upper.wasm"
        args   = ["/alloc/data/input.txt", "/alloc/data/output.txt"]
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
