package fakeapi

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/aws/smithy-go"
)

// Journal is the order of the calls made to the fakes that share it, one entry per call
// as IAM names the operation ("ec2:DescribeInstances", "ledger:Claim", "ticket:Open").
// A nil Journal records nothing.
type Journal struct {
	mu      sync.Mutex
	entries []string
}

// Entries returns the calls recorded so far, oldest first.
func (j *Journal) Entries() []string {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.entries)
}

// Reset forgets the calls recorded so far.
func (j *Journal) Reset() {
	if j == nil {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.entries = nil
}

func (j *Journal) add(entry string) {
	if j == nil {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.entries = append(j.entries, entry)
}

// Reply answers one call of an Op instead of the fake. answer is the fake's own answer,
// for a reply that only adds to it (a side effect, a changed result).
type Reply[I, O any] func(ctx context.Context, in *I, answer func(*I) (*O, error)) (*O, error)

// Op is one SDK operation of a fake. It records every input (a shallow copy) and hands
// out the replies set for the next calls, in order; a call with none left is answered
// by the fake from its state.
type Op[I, O any] struct {
	mu     sync.Mutex
	inputs []I
	next   []Reply[I, O]
}

// ReplyNext sets the replies of the next calls, after any set before; a nil reply lets
// that call be answered by the fake.
func (o *Op[I, O]) ReplyNext(replies ...Reply[I, O]) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.next = append(o.next, replies...)
}

// FailNext makes the next calls fail, one per error, after any replies set before; a
// nil error lets that call be answered by the fake.
func (o *Op[I, O]) FailNext(errs ...error) {
	replies := make([]Reply[I, O], len(errs))
	for i, err := range errs {
		replies[i] = func(_ context.Context, in *I, answer func(*I) (*O, error)) (*O, error) {
			if err == nil {
				return answer(in)
			}
			return nil, err
		}
	}
	o.ReplyNext(replies...)
}

// Inputs returns the inputs of the calls made so far, oldest first.
func (o *Op[I, O]) Inputs() []I {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.inputs)
}

// Count is the number of calls made so far.
func (o *Op[I, O]) Count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.inputs)
}

// ForgetCalls forgets the inputs recorded so far; the replies set stay.
func (o *Op[I, O]) ForgetCalls() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.inputs = nil
}

// call records in and answers it with the next reply set, or with answer. A call whose
// context is done fails with the context's error, as an SDK client's does.
func (o *Op[I, O]) call(ctx context.Context, in *I, answer func(*I) (*O, error)) (*O, error) {
	o.mu.Lock()
	if in == nil {
		in = new(I)
	}
	o.inputs = append(o.inputs, *in)
	var reply Reply[I, O]
	if len(o.next) > 0 {
		reply, o.next = o.next[0], o.next[1:]
	}
	o.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if reply != nil {
		return reply(ctx, in, answer)
	}
	return answer(in)
}

// APIError is an AWS error reply as the SDK hands it over: errors.As finds a
// smithy.APIError with the code.
func APIError(code, message string) error {
	return &smithy.GenericAPIError{Code: code, Message: message, Fault: smithy.FaultClient}
}

// failures hands out the errors set for the next calls of each named operation, for the
// fakes of imdsguard's own interfaces (the ledger, the ticket backend).
type failures struct {
	known []string
	next  map[string][]error
}

func (f *failures) failNext(op string, errs ...error) {
	if !slices.Contains(f.known, op) {
		panic("fakeapi: no operation " + op + "; known: " + strings.Join(f.known, ", "))
	}
	if f.next == nil {
		f.next = map[string][]error{}
	}
	f.next[op] = append(f.next[op], errs...)
}

// take returns the error set for this call of op, or nil.
func (f *failures) take(op string) error {
	errs := f.next[op]
	if len(errs) == 0 {
		return nil
	}
	f.next[op] = errs[1:]
	return errs[0]
}
