package bench_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deepgo/deepgo/go/bench"
	"github.com/deepgo/deepgo/go/cli"
)

func deepgo(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Main(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// field walks a decoded JSON object by dotted path.
func field(t *testing.T, m map[string]any, path string) any {
	t.Helper()
	var v any = m
	for _, k := range strings.Split(path, ".") {
		o, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s: %q is not an object", path, k)
		}
		if v, ok = o[k]; !ok {
			t.Fatalf("missing field %s", path)
		}
	}
	return v
}

func positive(t *testing.T, m map[string]any, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if f, ok := field(t, m, p).(float64); !ok || !(f > 0) {
			t.Errorf("%s = %v, want a positive number", p, field(t, m, p))
		}
	}
}

func nonEmpty(t *testing.T, m map[string]any, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if s, ok := field(t, m, p).(string); !ok || s == "" {
			t.Errorf("%s = %v, want a string", p, field(t, m, p))
		}
	}
}

// TestBenchE2EShape runs a short CPU bench of the tiny preset and checks the result file's fields
// (not the speed), the CSV, the profile, and compare's exit codes on it.
func TestBenchE2EShape(t *testing.T) {
	dir := t.TempDir()
	js, cs := filepath.Join(dir, "run.json"), filepath.Join(dir, "run.csv")
	code, out, errs := deepgo(t, "bench", "--synthetic", "tiny", "-p", "16", "-n", "4", "-b", "1,2", "-r", "2",
		"--profile", "--profile-steps", "2", "--cache-dir", filepath.Join(dir, "cache"), "--backend", "cpu",
		"--json", js, "--csv", cs)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	for _, want := range []string{"| model", "pp16", "tg4", "tg4@b2", "profile tg4", "% of step", "ceilings (this run)"} {
		if !strings.Contains(out, want) {
			t.Errorf("terminal output lacks %q:\n%s", want, out)
		}
	}
	m := readJSON(t, js)
	if field(t, m, "schema") != bench.Schema || field(t, m, "kind") != "e2e" {
		t.Errorf("schema/kind: %v %v", m["schema"], m["kind"])
	}
	nonEmpty(t, m, "git.commit", "git.source", "host.cpu", "device.backend", "device.name", "model.name", "model.dtype",
		"ceilings.gemm_shape", "date", "command")
	positive(t, m, "ceilings.copy_gb_s", "ceilings.gemm_tflop_s", "model.params", "model.active_params",
		"model.weight_bytes", "model.active_bytes_per_token", "load.load_s", "load.first_token_s", "load.peak_host_bytes",
		"memory.checkpoint_bytes", "memory.kv_cache_bytes", "memory.kv_tokens", "memory.workspace_bytes")
	/* tiny: kv_lora_rank 32 + qk_rope_head_dim 16 in an f32 cache (the CPU default); every tensor placed */
	if v := field(t, m, "memory.kv_bytes_per_token_layer"); v != float64(192) {
		t.Errorf("memory.kv_bytes_per_token_layer %v, want 192", v)
	}
	if v := field(t, m, "memory.weight_ratio"); v != float64(1) {
		t.Errorf("memory.weight_ratio %v, want 1", v)
	}
	if !strings.Contains(out, "memory: weights") {
		t.Errorf("terminal output lacks the memory line:\n%s", out)
	}
	if field(t, m, "device.backend") != "cpu" || field(t, m, "model.name") != "tiny" || field(t, m, "model.dtype") != "bf16" {
		t.Errorf("device/model: %v %v", m["device"], m["model"])
	}
	results := field(t, m, "results").([]any)
	keys := map[string]bool{}
	for _, r := range results {
		x := r.(map[string]any)
		keys[x["key"].(string)] = true
		positive(t, x, "mean", "median", "floor", "frac_of_floor", "tokens", "batch")
		if x["unit"] != "t/s" || x["n"].(float64) != 2 || len(x["samples"].([]any)) != 2 {
			t.Errorf("result %v: unit/n/samples", x["key"])
		}
		if _, ok := x["sd"].(float64); !ok {
			t.Errorf("result %v has no sd", x["key"])
		}
	}
	for _, k := range []string{"tiny|bf16|cpu|pp16", "tiny|bf16|cpu|tg4", "tiny|bf16|cpu|tg4@b2"} {
		if !keys[k] {
			t.Errorf("no result %s (have %v)", k, keys)
		}
	}
	prof := field(t, m, "profile").([]any)
	if len(prof) != 3 {
		t.Errorf("%d profile tables, want 3", len(prof))
	}
	rows := prof[0].(map[string]any)["rows"].([]any)
	kernels := map[string]bool{}
	for _, r := range rows {
		kernels[r.(map[string]any)["kernel"].(string)] = true
	}
	for _, k := range []string{"linear", "mla_prefill", "moe_ffn", "rmsnorm", "(host, untimed)"} {
		if !kernels[k] {
			t.Errorf("profile of pp16 lacks %s: %v", k, kernels)
		}
	}
	f, err := os.Open(cs)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(recs) != 4 || strings.Join(recs[0], ",") != strings.Join(bench.CSVHeader, ",") {
		t.Errorf("csv: %d records, err %v", len(recs), err)
	}

	// compare: the run against itself is all "same" (exit 0).
	if code, out, errs := deepgo(t, "bench", "compare", js, js); code != 0 || !strings.Contains(out, "same") {
		t.Errorf("compare with itself: exit %d\n%s%s", code, out, errs)
	}
	// A copy with tg4 10x slower, tight sds: exit 1, the figure named.
	r, err := bench.LoadReport(js)
	if err != nil {
		t.Fatal(err)
	}
	for i := range r.Results {
		r.Results[i].SD = 0
	}
	slow := *r
	slow.Results = append([]bench.Result(nil), r.Results...)
	for i := range slow.Results {
		if slow.Results[i].Test == "tg4" {
			slow.Results[i].Mean /= 10
		}
	}
	oldP, newP := filepath.Join(dir, "old.json"), filepath.Join(dir, "new.json")
	if err := r.WriteJSON(oldP); err != nil {
		t.Fatal(err)
	}
	if err := slow.WriteJSON(newP); err != nil {
		t.Fatal(err)
	}
	code, out, errs = deepgo(t, "bench", "compare", oldP, newP)
	if code != 1 || !strings.Contains(out, "slower") || !strings.Contains(errs, "regressed") {
		t.Errorf("compare with a slower run: exit %d\n%s%s", code, out, errs)
	}
	// ... and the other way round it is faster: exit 0.
	if code, out, _ := deepgo(t, "bench", "compare", newP, oldP); code != 0 || !strings.Contains(out, "faster") {
		t.Errorf("compare with a faster run: exit %d\n%s", code, out)
	}
	// --threshold 20 (2000%): nothing counts.
	if code, _, errs := deepgo(t, "bench", "compare", "--threshold", "20", oldP, newP); code != 0 {
		t.Errorf("--threshold 20: exit %d %s", code, errs)
	}
	// Malformed: exit 2 and the file named.
	bad := filepath.Join(dir, "broken.json")
	os.WriteFile(bad, []byte(`{"schema": "deepgo-bench/1", "results": [`), 0o644)
	if code, _, errs := deepgo(t, "bench", "compare", js, bad); code != 2 || !strings.Contains(errs, "broken.json") {
		t.Errorf("malformed file: exit %d, stderr %q", code, errs)
	}
	if code, _, errs := deepgo(t, "bench", "compare", js); code != 2 {
		t.Errorf("one file: exit %d %s", code, errs)
	}
}

// TestBenchKernelsShape runs bench kernels --quick on the CPU at the tiny preset's shapes: every
// kernel of the contract appears, checks pass or are skipped with a reason, figures are there.
func TestBenchKernelsShape(t *testing.T) {
	js := filepath.Join(t.TempDir(), "k.json")
	code, out, errs := deepgo(t, "bench", "kernels", "--backend", "cpu", "--quick", "--shapes", "tiny", "--json", js)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	m := readJSON(t, js)
	if field(t, m, "kind") != "kernels" {
		t.Errorf("kind %v", m["kind"])
	}
	nonEmpty(t, m, "git.commit", "host.cpu", "device.name")
	positive(t, m, "ceilings.copy_gb_s", "ceilings.gemm_tflop_s")
	seen := map[string]bool{}
	passLinear := false
	for _, r := range field(t, m, "results").([]any) {
		x := r.(map[string]any)
		k := x["kernel"].(string)
		seen[k] = true
		if e, ok := x["error"]; ok {
			t.Errorf("%s %s: error %v", k, x["shape"], e)
		}
		switch x["check"] {
		case "PASS":
			if k == "linear" && strings.Contains(x["check_detail"].(string), "go reference") {
				passLinear = true
			}
		case "SKIP":
			if x["check_detail"] == "" {
				t.Errorf("%s: SKIP without a reason", x["key"])
			}
		default:
			t.Errorf("%s: check %v (%v)", x["key"], x["check"], x["check_detail"])
		}
		positive(t, x, "median", "mean", "bytes")
		if x["unit"] != "us" || x["higher_is_better"] != false {
			t.Errorf("%s: unit %v", x["key"], x["unit"])
		}
	}
	for _, k := range []string{"embed", "rmsnorm", "linear", "head_matmul", "rope", "kv_store", "kv_gather", "mla_prep", "mla_prefill",
		"mla_decode", "silu_mul", "moe_gate", "moe_ffn", "argmax", "sample", "convert"} {
		if !seen[k] {
			t.Errorf("no %s case", k)
		}
	}
	if !passLinear {
		t.Error("no linear case checked against the Go reference")
	}
}
