package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/deepgo/deepgo/go/engine"
)

func repoPath(p ...string) string {
	return filepath.Join(append([]string{"..", ".."}, p...)...)
}

// fixtureRef is the reference of tests/fixtures/models/plainq-f32-sharded (transformers' greedy).
var (
	fixturePrompt = []int{0, 99, 129, 40, 125, 30, 213, 223, 197, 23, 12, 65}
	fixtureGreedy = []int{11, 28, 28, 240, 221, 56, 56, 138}
)

type testServer struct {
	*Server
	URL   string
	Eng   *engine.Engine
	Sched *engine.Scheduler
	http  *httptest.Server
}

type serverOpts struct {
	model    string // folder
	batch    int
	ctx      int
	maxQueue int
	kv       engine.CacheConfig
	cfg      Config
	before   func() // SchedulerConfig.BeforeStep (tests that need slow steps)
}

func startServer(t testing.TB, o serverOpts) *testServer {
	t.Helper()
	if o.batch == 0 {
		o.batch = 4
	}
	if o.ctx == 0 {
		o.ctx = 64
	}
	eng, err := engine.OpenWithCache(engine.Config{ModelDir: o.model, Backend: "cpu", Threads: 2, MaxBatch: o.batch,
		MaxContext: o.ctx, MaxTokens: 128}, o.kv)
	require.NoError(t, err)
	if o.cfg.ModelName == "" {
		o.cfg.ModelName = "test-model"
	}
	s := New(o.cfg)
	sched := engine.NewScheduler(eng, engine.SchedulerConfig{MaxQueue: o.maxQueue, BeforeStep: o.before})
	s.SetScheduler(sched)
	hs := httptest.NewServer(s)
	ts := &testServer{Server: s, URL: hs.URL, Eng: eng, Sched: sched, http: hs}
	t.Cleanup(func() {
		hs.CloseClientConnections()
		sched.Close()
		hs.Close()
		eng.Close()
	})
	return ts
}

func fixtureServer(t testing.TB, o serverOpts) *testServer {
	o.model = repoPath("tests", "fixtures", "models", "plainq-f32-sharded")
	return startServer(t, o)
}

var (
	synthOnce sync.Once
	synthDir  string
	synthErr  error
)

// tinyModel is `deepgo synth --preset tiny` with the DeepSeek-V3 tokenizer, made once per
// test binary (removed by TestMain).
func tinyModel(t testing.TB) string {
	t.Helper()
	tokDir := repoPath("build", "tokenizer", "deepseek-v3")
	if _, err := os.Stat(filepath.Join(tokDir, "tokenizer.json")); err != nil {
		t.Skipf("no DeepSeek-V3 tokenizer at %s: run `make tokenizer` (tests/reference/fetch_tokenizer.sh)", tokDir)
	}
	synthOnce.Do(func() {
		dir, err := os.MkdirTemp("", "deepgo-server-tiny-")
		if err != nil {
			synthErr = err
			return
		}
		synthDir = dir
		if _, err := engine.Synthesize("tiny", 0, "bf16", 1, dir, nil); err != nil {
			synthErr = err
			return
		}
		for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
			b, err := os.ReadFile(filepath.Join(tokDir, f))
			if err == nil {
				err = os.WriteFile(filepath.Join(dir, f), b, 0o644)
			}
			if err != nil {
				synthErr = err
				return
			}
		}
	})
	require.NoError(t, synthErr)
	return synthDir
}

var (
	sharedOnce sync.Once
	shared     *testServer
	sharedStop func()
)

// sharedTiny is one server over the tiny model (context 256, batch 4) for the tests that need
// nothing special: loading the model and its tokenizer once saves seconds.
func sharedTiny(t testing.TB) *testServer {
	dir := tinyModel(t)
	sharedOnce.Do(func() {
		eng, err := engine.Open(engine.Config{ModelDir: dir, Backend: "cpu", Threads: 2, MaxBatch: 4,
			MaxContext: 256, MaxTokens: 128})
		if err != nil {
			t.Fatalf("open the tiny model: %v", err)
		}
		s := New(Config{ModelName: "test-model"})
		sched := engine.NewScheduler(eng, engine.SchedulerConfig{})
		s.SetScheduler(sched)
		hs := httptest.NewServer(s)
		shared = &testServer{Server: s, URL: hs.URL, Eng: eng, Sched: sched, http: hs}
		sharedStop = func() {
			hs.CloseClientConnections()
			sched.Close()
			hs.Close()
			eng.Close()
		}
	})
	if shared == nil {
		t.Fatal("the shared tiny server failed to start")
	}
	return shared
}

var (
	refOnce sync.Once
	refEng  *engine.Engine
	refErr  error
)

// refEngine is a second engine over the tiny model for the expected outputs: the servers'
// engines belong to their schedulers.
func refEngine(t testing.TB) *engine.Engine {
	dir := tinyModel(t)
	refOnce.Do(func() {
		refEng, refErr = engine.Open(engine.Config{ModelDir: dir, Backend: "cpu", Threads: 2, MaxBatch: 1,
			MaxContext: 256, MaxTokens: 128})
	})
	require.NoError(t, refErr)
	return refEng
}

func TestMain(m *testing.M) {
	code := m.Run()
	if refEng != nil {
		refEng.Close()
	}
	if sharedStop != nil {
		sharedStop()
	}
	if chatStop != nil {
		chatStop()
	}
	if synthDir != "" {
		os.RemoveAll(synthDir)
	}
	os.Exit(code)
}

// post sends a JSON body (a string is sent as is) and returns the status and the raw body.
func post(t testing.TB, url string, body any, hdr ...string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		js, err := json.Marshal(b)
		require.NoError(t, err)
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(http.MethodPost, url, rd)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, out
}

func get(t testing.TB, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, out
}

func decode[T any](t testing.TB, b []byte) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(b, &v), "%s", b)
	return v
}

// requireError checks OpenAI's error object: every key present, the type and param given.
func requireError(t testing.TB, status int, body []byte, wantStatus int, wantParam string) map[string]any {
	t.Helper()
	require.Equal(t, wantStatus, status, "%s", body)
	var e struct {
		Error map[string]any `json:"error"`
	}
	require.NoError(t, json.Unmarshal(body, &e), "%s", body)
	require.NotNil(t, e.Error, "%s", body)
	for _, k := range []string{"message", "type", "param", "code"} {
		require.Contains(t, e.Error, k, "%s", body)
	}
	require.NotEmpty(t, e.Error["message"])
	if wantParam != "" {
		require.Equal(t, wantParam, e.Error["param"], "%s", body)
	}
	return e.Error
}

// sseEvents splits a server-sent-events body into its data payloads, checking the framing:
// every event is exactly "data: ...\n\n" and the last is [DONE].
func sseEvents(t testing.TB, body []byte) []string {
	t.Helper()
	s := string(body)
	require.True(t, strings.HasSuffix(s, "data: [DONE]\n\n"), "stream does not end with [DONE]: %q", tail(s))
	var out []string
	for _, ev := range strings.Split(strings.TrimSuffix(s, "\n\n"), "\n\n") {
		require.True(t, strings.HasPrefix(ev, "data: "), "bad event %q", ev)
		require.NotContains(t, ev, "\n", "event spans lines: %q", ev)
		out = append(out, strings.TrimPrefix(ev, "data: "))
	}
	return out
}

func tail(s string) string {
	if len(s) > 200 {
		return s[len(s)-200:]
	}
	return s
}

// metricValue reads one sample of /metrics (the first line starting with name and a label set
// or a space).
func metricValue(t testing.TB, url, name string) float64 {
	t.Helper()
	_, body := get(t, url+"/metrics")
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			require.NoError(t, err)
			return v
		}
	}
	t.Fatalf("metric %s not found in:\n%s", name, body)
	return 0
}

func waitMetric(t testing.TB, url, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v := metricValue(t, url, name)
		if v == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %v", name, v, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ids(v []int) string { return fmt.Sprint(v) }
