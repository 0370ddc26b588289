package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// process is one running component.
type process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed once the process has been reaped; then cmd.ProcessState tells how it ended
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// tail returns the last n lines of the process' log.
func (p *process) tail(n int) string { return tailFile(p.logPath, n) }

// exitError describes an early exit, with the log lines that usually say why.
func (p *process) exitError(while string) error {
	return fmt.Errorf("%s exited %s (%s); last lines of %s:\n%s", p.name, while, p.cmd.ProcessState, p.logPath, p.tail(40))
}

// spawner starts every child from one OS thread that outlives them.
//
// Pdeathsig is delivered when the *thread* that forked the child exits, not
// the process: the Go runtime may retire threads, which would kill a healthy
// component mid-test. Forking from a goroutine locked to its thread for the
// environment's whole life keeps Pdeathsig meaning "the test binary died".
type spawner struct {
	reqs chan spawnRequest
	quit chan struct{}
}

type spawnRequest struct {
	cmd *exec.Cmd
	res chan error
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnRequest), quit: make(chan struct{})}
	go s.loop()
	return s
}

func (s *spawner) loop() {
	// Never unlocked on purpose: when this goroutine returns (after Stop), the
	// runtime retires the thread, which also SIGKILLs any child that
	// survived Stop.
	runtime.LockOSThread()
	for {
		select {
		case r := <-s.reqs:
			r.res <- r.cmd.Start()
		case <-s.quit:
			return
		}
	}
}

func (s *spawner) start(cmd *exec.Cmd) error {
	res := make(chan error, 1)
	select {
	case s.reqs <- spawnRequest{cmd: cmd, res: res}:
		return <-res
	case <-s.quit:
		return errors.New("environment is stopping")
	}
}

func (s *spawner) close() { close(s.quit) }

// spawn starts bin with args, its output appended to logPath, in a process
// group of its own so that Stop can kill it together with anything it forks,
// and so that a terminal's Ctrl-C reaches only the test binary, which then
// shuts the stack down in order.
func spawn(sp *spawner, name, bin string, args []string, logPath string) (*process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening log of %s: %w", name, err)
	}
	defer f.Close() // the child has its own descriptor
	fmt.Fprintf(f, "=== %s %s %s\n", time.Now().Format(time.RFC3339Nano), bin, strings.Join(args, " "))

	cmd := exec.Command(bin, args...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := sp.start(cmd); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // the exit status stays in cmd.ProcessState
		close(p.done)
	}()
	return p, nil
}

// terminate stops all processes at once: SIGTERM to every group, then SIGKILL
// to the groups still alive after grace. It returns once every process has
// been reaped or a further bounded wait has passed, with the names of those
// that needed SIGKILL.
func terminate(procs []*process, grace time.Duration) (killed []string, _ error) {
	for _, p := range procs {
		if !p.exited() {
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		}
	}
	waitAll(procs, time.Now().Add(grace))
	var errs []error
	for _, p := range procs {
		if !p.exited() {
			killed = append(killed, p.name)
		}
		// Also sweeps whatever the leader forked, even when the leader is gone.
		if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("killing %s: %w", p.name, err))
		}
	}
	waitAll(procs, time.Now().Add(5*time.Second))
	for _, p := range procs {
		if !p.exited() {
			errs = append(errs, fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, p.cmd.Process.Pid))
		}
	}
	return killed, errors.Join(errs...)
}

func waitAll(procs []*process, deadline time.Time) {
	for _, p := range procs {
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-p.done:
		case <-t.C:
		}
		t.Stop()
	}
}

// tailFile returns the last n lines of a file, reading at most its last 64 KiB.
func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	defer f.Close()
	const max = 64 << 10
	if st, err := f.Stat(); err == nil && st.Size() > max {
		if _, err := f.Seek(-max, io.SeekEnd); err != nil {
			return fmt.Sprintf("(cannot read %s: %v)", path, err)
		}
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// freePorts reserves n distinct free loopback ports. They are released before
// the component binds them, so another process can win the race; callers
// retry when a component reports the address in use.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
