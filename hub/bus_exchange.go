package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Exchange runs requests, replies and one-way casts between nodes over a Bus.
//
// A Call sends a request to a node's inbox and waits for that node's reply: the handler
// registered for the request's op runs on the target node and its answer comes back to the
// caller's inbox. The answer says the target acted; no answer within the Exchange's timeout is
// ErrTimeout, a target without a live inbox is ErrUnreachable; either way the caller knows the
// request may not have been carried out, and nothing fails silently. A call to this node's own
// id runs the handler directly, without the bus.
//
// Messages are JSON: {"t":"req"|"rep"|"cast","id":N,"f":"<from node>","op":"...","b":<body>,
// "e":"<error>"}. Bodies are JSON values chosen by the handlers. A batch of casts (CastBatch)
// is {"t":"casts","f":"<from node>","b":[{"op":"...","b":<body>},...]}.
type Exchange struct {
	node    string
	bus     Bus
	timeout time.Duration

	handlers map[string]Handler

	seq     atomic.Uint64
	mu      sync.Mutex
	pending map[uint64]chan exchangeMsg

	// running counts handler goroutines so Run returns only after they have finished.
	running sync.WaitGroup
	ctx     context.Context // Run's context, the parent of every handler's
}

// Handler answers one op. For a Call it runs on its own goroutine on the target node; for a
// Cast it runs on the goroutine that delivers the inbox, in arrival order, and must not block.
// body is the caller's JSON; the returned value is marshalled as the reply (nil replies JSON null).
// A returned error reaches the caller as a *RemoteError.
type Handler func(ctx context.Context, from string, body json.RawMessage) (any, error)

// Errors of Call, wrapped with the node's id in a *NodeError.
var (
	// ErrTimeout: the node did not answer within the Exchange's timeout.
	ErrTimeout = errors.New("hub: node did not answer in time")
	// ErrUnknownOp: the node has no handler for the op.
	ErrUnknownOp = errors.New("hub: unknown op")
)

// Deferred is a Handler result whose After runs once the reply is on its way: after it was
// sent to the caller, or, for a call to this node, on a goroutine of its own as Call returns.
// It lets a handler that has committed to its work (say, marked sockets closing) answer before
// the bulk of that work (their writes) competes with the reply for the CPU.
type Deferred struct {
	Reply any
	After func()
}

// NodeError is a failed Call: which node, and why (ErrTimeout, ErrUnreachable, a
// *RemoteError, a context error).
type NodeError struct {
	Node string
	Err  error
}

func (e *NodeError) Error() string { return "node " + e.Node + ": " + e.Err.Error() }
func (e *NodeError) Unwrap() error { return e.Err }

// RemoteError is an error returned by the target node's handler.
type RemoteError struct{ Message string }

func (e *RemoteError) Error() string { return e.Message }

type exchangeMsg struct {
	Type string          `json:"t"`
	ID   uint64          `json:"id,omitempty"`
	From string          `json:"f"`
	Op   string          `json:"op,omitempty"`
	Body json.RawMessage `json:"b,omitempty"`
	Err  string          `json:"e,omitempty"`
}

// NewExchange returns an Exchange for node over bus; calls wait at most timeout for a reply.
// Register handlers with Handle, then call Run.
func NewExchange(node string, bus Bus, timeout time.Duration) *Exchange {
	return &Exchange{
		node: node, bus: bus, timeout: timeout,
		handlers: make(map[string]Handler),
		pending:  make(map[uint64]chan exchangeMsg),
		ctx:      context.Background(),
	}
}

// Node returns this node's id.
func (x *Exchange) Node() string { return x.node }

// Timeout returns the bound on a reply.
func (x *Exchange) Timeout() time.Duration { return x.timeout }

// Handle registers h for op. It must be called before Run.
func (x *Exchange) Handle(op string, h Handler) { x.handlers[op] = h }

// Run receives this node's inbox until ctx ends; it returns once every handler it started
// has returned.
func (x *Exchange) Run(ctx context.Context) error {
	x.ctx = ctx
	err := x.bus.Run(ctx, x.deliver)
	x.running.Wait()
	return err
}

// Ready reports whether the node's inbox is live.
func (x *Exchange) Ready() error { return x.bus.Ready() }

func (x *Exchange) deliver(raw []byte) {
	var m exchangeMsg
	if err := json.Unmarshal(raw, &m); err != nil {
		return // not ours; a malformed message cannot be answered
	}
	switch m.Type {
	case "rep":
		x.mu.Lock()
		ch := x.pending[m.ID]
		delete(x.pending, m.ID)
		x.mu.Unlock()
		if ch != nil {
			ch <- m
		}
	case "cast":
		// Casts run in arrival order on the delivering goroutine, so that events from one
		// node are handled in the order it sent them: their handlers must not block.
		x.serve(m)
	case "casts":
		var casts []Cast
		if err := json.Unmarshal(m.Body, &casts); err != nil {
			return
		}
		for _, c := range casts {
			x.serve(exchangeMsg{Type: "cast", From: m.From, Op: c.Op, Body: c.Body})
		}
	case "req":
		x.running.Add(1)
		go func() {
			defer x.running.Done()
			x.serve(m)
		}()
	}
}

// serve runs the handler of a request or cast and, for a request, sends the reply.
func (x *Exchange) serve(m exchangeMsg) {
	ctx, cancel := context.WithTimeout(x.ctx, x.timeout)
	defer cancel()
	body, after, err := x.handle(ctx, m.From, m.Op, m.Body)
	if after != nil {
		defer after()
	}
	if m.Type != "req" {
		return
	}
	rep := exchangeMsg{Type: "rep", ID: m.ID, From: x.node, Body: body}
	if err != nil {
		rep.Err = err.Error()
	}
	b, _ := json.Marshal(rep) // only JSON-ready fields
	// A reply that cannot be sent surfaces as the caller's timeout.
	_ = x.bus.Send(ctx, m.From, b)
}

func (x *Exchange) handle(ctx context.Context, from, op string, body json.RawMessage) (json.RawMessage, func(), error) {
	h := x.handlers[op]
	if h == nil {
		return nil, nil, fmt.Errorf("%w %q", ErrUnknownOp, op)
	}
	v, err := h(ctx, from, body)
	if err != nil {
		return nil, nil, err
	}
	var after func()
	if d, ok := v.(*Deferred); ok {
		v, after = d.Reply, d.After
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, after, fmt.Errorf("failed to encode reply to %s: %w", op, err)
	}
	return b, after, nil
}

// Call runs op on node with body (marshalled to JSON) and returns the node's reply. Errors
// are *NodeError. A call to this node runs the handler here.
func (x *Exchange) Call(ctx context.Context, node, op string, body any) (json.RawMessage, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("failed to encode %s request: %w", op, err)
	}
	if node == x.node {
		ctx, cancel := context.WithTimeout(ctx, x.timeout)
		defer cancel()
		rep, after, err := x.handle(ctx, x.node, op, raw)
		if after != nil {
			x.running.Go(after)
		}
		if err != nil {
			return nil, &NodeError{Node: node, Err: &RemoteError{Message: err.Error()}}
		}
		return rep, nil
	}
	id := x.seq.Add(1)
	ch := make(chan exchangeMsg, 1)
	x.mu.Lock()
	x.pending[id] = ch
	x.mu.Unlock()
	defer func() {
		x.mu.Lock()
		delete(x.pending, id)
		x.mu.Unlock()
	}()
	msg, _ := json.Marshal(exchangeMsg{Type: "req", ID: id, From: x.node, Op: op, Body: raw})
	ctx, cancel := context.WithTimeout(ctx, x.timeout)
	defer cancel()
	if err := x.bus.Send(ctx, node, msg); err != nil {
		return nil, &NodeError{Node: node, Err: err}
	}
	select {
	case rep := <-ch:
		if rep.Err != "" {
			return nil, &NodeError{Node: node, Err: &RemoteError{Message: rep.Err}}
		}
		return rep.Body, nil
	case <-ctx.Done():
		err := ctx.Err()
		if errors.Is(err, context.DeadlineExceeded) {
			err = ErrTimeout
		}
		return nil, &NodeError{Node: node, Err: err}
	}
}

// Result is one node's answer to CallAll.
type Result struct {
	Node  string
	Reply json.RawMessage
	Err   error // a *NodeError
}

// CallAll calls op on every node in parallel and returns one Result per node, in order.
func (x *Exchange) CallAll(ctx context.Context, nodes []string, op string, body any) []Result {
	out := make([]Result, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			rep, err := x.Call(ctx, n, op, body)
			out[i] = Result{Node: n, Reply: rep, Err: err}
		})
	}
	wg.Wait()
	return out
}

// Cast sends op to node without waiting for it to run; it reports only whether the message
// reached the node's inbox. A cast to this node runs the handler before Cast returns.
func (x *Exchange) Cast(ctx context.Context, node, op string, body any) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("failed to encode %s cast: %w", op, err)
	}
	return x.sendCast(ctx, node, exchangeMsg{Type: "cast", From: x.node, Op: op, Body: raw})
}

// Cast is one op of a CastBatch, its body already in JSON.
type Cast struct {
	Op   string          `json:"op"`
	Body json.RawMessage `json:"b,omitempty"`
}

// CastBatch sends casts to node in one message; node runs them in their order, as if each had
// been cast on its own. It reports only whether the message reached the node's inbox. One
// message for many casts is what lets a node keep up with thousands of events a second (a
// mass disconnect's presence leaves), which one publish each could not.
func (x *Exchange) CastBatch(ctx context.Context, node string, casts []Cast) error {
	raw, err := json.Marshal(casts)
	if err != nil {
		return fmt.Errorf("failed to encode a batch of %d casts: %w", len(casts), err)
	}
	return x.sendCast(ctx, node, exchangeMsg{Type: "casts", From: x.node, Body: raw})
}

// sendCast delivers a cast message to node's inbox, or here for this node.
func (x *Exchange) sendCast(ctx context.Context, node string, m exchangeMsg) error {
	msg, _ := json.Marshal(m) // only JSON-ready fields
	if node == x.node {
		x.deliver(msg)
		return nil
	}
	if err := x.bus.Send(ctx, node, msg); err != nil {
		return &NodeError{Node: node, Err: err}
	}
	return nil
}
