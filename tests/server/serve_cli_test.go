package serverclient

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// syncBuffer collects a process's stderr while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServeCommandGracefulShutdown runs the real binary: `deepgo serve --port 0`, then SIGTERM
// while one short and one long request stream. The short one finishes; the long one, still
// running at --shutdown-timeout, ends with an error event and [DONE]; new requests get 503;
// the process exits 0.
func TestServeCommandGracefulShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the deepgo binary")
	}
	dir := tinyModel(t)
	bin := filepath.Join(t.TempDir(), "deepgo")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/deepgo")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	cmd := exec.Command(bin, "serve", "--model", dir, "--host", "127.0.0.1", "--port", "0", "--backend", "cpu",
		"--parallel", "4", "--ctx-size", "4096", "--shutdown-timeout", "1s", "--served-model-name", "tiny")
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
	}()

	var base string
	re := regexp.MustCompile(`ready on (http://127\.0\.0\.1:\d+)`)
	require.Eventually(t, func() bool {
		if m := re.FindStringSubmatch(stderr.String()); m != nil {
			base = m[1]
			return true
		}
		return false
	}, 30*time.Second, 10*time.Millisecond, "server did not start:\n%s", stderr.String())
	resp, err := http.Get(base + "/health")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	type result struct {
		body string
		err  error
	}
	stream := func(maxTokens string, started chan<- struct{}) <-chan result {
		ch := make(chan result, 1)
		go func() {
			body := `{"model":"tiny","prompt":"Once upon a time","stream":true,"ignore_eos":true,"max_tokens":` + maxTokens + `}`
			resp, err := http.Post(base+"/v1/completions", "application/json", strings.NewReader(body))
			if err != nil {
				ch <- result{err: err}
				return
			}
			defer resp.Body.Close()
			rd := bufio.NewReader(resp.Body)
			first, err := rd.ReadString('\n')
			close(started)
			rest, _ := io.ReadAll(rd)
			ch <- result{body: first + string(rest), err: err}
		}()
		return ch
	}
	longStarted := make(chan struct{})
	// 4,000 tokens: several seconds on the tiny model, well past the 1 s given at shutdown (900
	// tokens against 3 s let the "long" request finish in time on a fast host)
	long := stream("4000", longStarted)
	<-longStarted
	shortStarted := make(chan struct{})
	short := stream("2", shortStarted)
	<-shortStarted

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.Eventually(t, func() bool { return strings.Contains(stderr.String(), "shutting down") }, 5*time.Second,
		5*time.Millisecond)
	resp, err = http.Post(base+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"x"}`))
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "%s", b)
	require.Contains(t, string(b), `"error"`)

	s := <-short
	require.NoError(t, s.err)
	require.Contains(t, s.body, `"finish_reason":"length"`)
	require.True(t, strings.HasSuffix(s.body, "data: [DONE]\n\n"))
	l := <-long
	require.NoError(t, l.err)
	require.Contains(t, l.body, "shut down before the request finished")
	require.True(t, strings.HasSuffix(l.body, "data: [DONE]\n\n"))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	select {
	case err := <-exited:
		require.NoError(t, err, "%s", stderr.String())
	case <-ctx.Done():
		t.Fatalf("serve did not exit:\n%s", stderr.String())
	}
	require.Contains(t, stderr.String(), "deepgo serve: stopped")
}
