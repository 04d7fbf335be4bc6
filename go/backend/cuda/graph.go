package cuda

import "runtime"

// Graph is a captured sequence of kernel calls (a CUDA graph), replayed with Launch. Every
// kernel of the contract reads its per-step values (positions, lengths, block tables, tokens)
// from device memory, so one capture per batch-size bucket serves every step: update those
// buffers (Upload before Launch, on the same stream) and replay.
type Graph struct {
	b    *Backend
	exec uintptr
}

// CaptureBegin starts capturing this backend's stream: kernel calls and device copies made until
// CaptureEnd are recorded, not run. Allocation, host copies and Sync are errors meanwhile.
func (b *Backend) CaptureBegin() error {
	return b.check("graph_begin", func() int32 { return b.lib.graphBegin(b.stream) })
}

// CaptureEnd stops the capture and instantiates the graph.
func (b *Backend) CaptureEnd() (*Graph, error) {
	g := &Graph{b: b}
	if err := b.check("graph_end", func() int32 { return b.lib.graphEnd(b.stream, &g.exec) }); err != nil {
		return nil, err
	}
	return g, nil
}

// Launch replays the graph on the backend's stream (asynchronously, like a kernel call).
func (g *Graph) Launch() error {
	return g.b.check("graph_launch", func() int32 { return g.b.lib.graphLaunch(g.exec, g.b.stream) })
}

// Destroy frees the graph.
func (g *Graph) Destroy() error {
	if g.exec == 0 {
		return nil
	}
	err := g.b.check("graph_destroy", func() int32 { return g.b.lib.graphDestroy(g.exec) })
	g.exec = 0
	return err
}

// CaptureGraph captures the kernels and device copies that record queues on this backend's
// stream into a graph (nothing runs meanwhile) and returns it; replay it with Launch. When record
// or the capture fails, the capture is ended and the error returned.
func (b *Backend) CaptureGraph(record func() error) (interface {
	Launch() error
	Destroy() error
}, error) {
	// Global-mode capture must end on the OS thread that began it (else
	// cudaErrorStreamCaptureWrongThread): hold this goroutine's thread from begin to end. The
	// kernel calls inside lock it again, which nests.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := b.CaptureBegin(); err != nil {
		return nil, err
	}
	rerr := record()
	g, err := b.CaptureEnd()
	if rerr != nil {
		if err == nil {
			_ = g.Destroy()
		}
		return nil, rerr
	}
	if err != nil {
		return nil, err
	}
	return g, nil
}
