package testenv

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Process is a server a test runs as its own process (istiod, the operator binary), its standard
// output and error in a log file.
type Process struct {
	// LogFile holds what the process wrote.
	LogFile string

	cmd  *exec.Cmd
	done chan struct{}
	err  error // what Wait returned, once done is closed
}

// StartProcess starts cmd (Path, Args, Env, Dir set; Stdout and Stderr are the log file's).
func StartProcess(cmd *exec.Cmd, logFile string) (*Process, error) {
	log, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	defer log.Close() // the child has its own descriptor
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{LogFile: logFile, cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// WaitHTTP polls url until it answers 200 OK; it fails when within has passed or the process has
// exited, with the end of its log.
func (p *Process) WaitHTTP(url string, within time.Duration) error {
	deadline := time.Now().Add(within)
	client := &http.Client{Timeout: 2 * time.Second}
	last := "no answer"
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before %s answered: %v\n%s", p.cmd.Path, url, p.err, p.LogTail(40))
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s: %s not ready within %v: %s\n%s", p.cmd.Path, url, within, last, p.LogTail(40))
}

// LogTail is the last n lines of the log.
func (p *Process) LogTail(n int) string {
	data, err := os.ReadFile(p.LogFile)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// Stop stops the process (SIGTERM, then SIGKILL after 10 s; a stopped process is resumed first)
// and waits for it to exit.
func (p *Process) Stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}
