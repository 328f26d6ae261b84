package fakeaws

import (
	"context"
	"errors"
	"sync"
)

// shared is the one moto_server of a process that SharedMoto hands out.
var shared struct {
	once sync.Once
	srv  *MotoServer
	err  error
}

// SharedMoto returns the process's one moto_server, started on first use: a test binary
// starts moto once, and resets it between tests (MotoServer.Reset). It returns
// ErrMotoMissing when moto_server is not installed.
func SharedMoto(ctx context.Context) (*MotoServer, error) {
	shared.once.Do(func() { shared.srv, shared.err = StartMoto(ctx) })
	return shared.srv, shared.err
}

// StopSharedMoto stops the shared moto_server, if one was started; a later SharedMoto
// does not start another.
func StopSharedMoto() {
	shared.once.Do(func() { shared.err = errors.New("shared moto_server already stopped") })
	if shared.srv != nil {
		shared.srv.Stop()
	}
}
