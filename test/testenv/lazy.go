package testenv

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

// Lazy is a control plane that the first test needing it starts, so that a package's unit tests
// run without one, and that its TestMain stops (Main).
type Lazy struct {
	// Options returns the options to start with; nil means the defaults. It runs once, before
	// the start, and may prepare files the flags point at.
	Options func() (Options, error)

	once sync.Once
	env  *Env
	err  error
}

// Get returns the control plane, starting it on first use; it fails the test if it cannot.
func (l *Lazy) Get(t testing.TB) *Env {
	t.Helper()
	l.once.Do(func() {
		opts := Options{}
		if l.Options != nil {
			if opts, l.err = l.Options(); l.err != nil {
				return
			}
		}
		l.env, l.err = Start(opts)
	})
	if l.err != nil {
		t.Fatalf("starting the control plane: %v", l.err)
	}
	return l.env
}

// Main runs the tests, stops the control plane if one was started, and exits; call it from
// TestMain.
func (l *Lazy) Main(m *testing.M) { os.Exit(l.Run(m)) }

// Run is Main without the exit, for a TestMain with more to clean up: it returns the tests' exit
// code.
func (l *Lazy) Run(m *testing.M) int {
	code := m.Run()
	if l.env != nil {
		if err := l.env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
		}
	}
	return code
}
