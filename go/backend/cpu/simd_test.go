package cpu

import (
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSIMDVariants reruns the numeric tests of the kernels built on the dispatch table in a child
// process for every lower SIMD level (DG_SIMD caps the level the library picks at init), so the
// scalar, AVX2 and AVX-512-without-bf16 paths are checked on an AVX-512 machine too (on arm64:
// scalar beside NEON). DEEPGO_TEST_EXEC, when set, is the command that runs the child (an
// emulator: `make test-arm64` sets it to qemu-aarch64).
func TestSIMDVariants(t *testing.T) {
	if os.Getenv("DG_SIMD") != "" {
		t.Skip("child process")
	}
	if testing.Short() {
		t.Skip("short mode")
	}
	levels := []string{"scalar", "avx2", "avx512-nobf16"}
	if runtime.GOARCH != "amd64" {
		levels = []string{"scalar"}
	}
	for _, level := range levels {
		t.Run(level, func(t *testing.T) {
			args := []string{os.Args[0], "-test.run",
				"^(TestLinear|TestLinearLarge|TestHeadMatmul|TestMLAPrefill|TestMLADecode|TestMLAAbsorbedEqualsNaive|TestMoEFFN|TestConvert|TestRMSNorm|TestBackendBasics)$",
				"-test.count=1"}
			if w := strings.Fields(os.Getenv("DEEPGO_TEST_EXEC")); len(w) > 0 {
				args = append(w, args...)
			}
			cmd := exec.Command(args[0], args[1:]...)
			cmd.Env = append(os.Environ(), "DG_SIMD="+level)
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "DG_SIMD=%s:\n%s", level, out)
		})
	}
}
