package fakeaws

import (
	"fmt"
	"net/http"
	"sync"
)

// APIError is the error a stand-in answers with instead of serving a request, either
// because the request is invalid or because a test injected a fault. Each stand-in
// renders it in its own protocol (JSON 1.1 for CloudTrail, AWSQuery XML for CloudWatch).
type APIError struct {
	Code    string // the service's error code, e.g. "ThrottlingException"
	Message string
	Status  int // HTTP status; 0 means 400
}

func (e *APIError) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

func (e *APIError) status() int {
	if e.Status == 0 {
		return http.StatusBadRequest
	}
	return e.Status
}

// faults is the fault-injection state shared by the stand-ins: a queue of errors for the
// next requests (FailNext) and an optional decision function (SetFault). The queue wins.
type faults[R any] struct {
	mu   sync.Mutex
	next []APIError
	fn   func(R) *APIError
}

func (f *faults[R]) failNext(n int, e APIError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		f.next = append(f.next, e)
	}
}

func (f *faults[R]) set(fn func(R) *APIError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fn = fn
}

func (f *faults[R]) clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next, f.fn = nil, nil
}

// pick returns the fault for request r, or nil to serve it normally. The decision
// function is called without the lock held so that it may itself call the stand-in.
func (f *faults[R]) pick(r R) *APIError {
	f.mu.Lock()
	if len(f.next) > 0 {
		e := f.next[0]
		f.next = f.next[1:]
		f.mu.Unlock()
		return &e
	}
	fn := f.fn
	f.mu.Unlock()
	if fn == nil {
		return nil
	}
	return fn(r)
}
