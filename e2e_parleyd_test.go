package parley_test

import (
	"bufio"
	"errors"
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

// TestParleydRestart is TestServerRestart with the parleyd binary itself:
// built from ./cmd/parleyd, stopped with SIGTERM (it must exit 0), and
// started again on the same signaling address. The second process picks
// its own UDP port: the rejoins negotiate it afresh.
func TestParleydRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the parleyd binary")
	}
	bin := filepath.Join(t.TempDir(), "parleyd")
	out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "./cmd/parleyd").CombinedOutput()
	require.NoError(t, err, "go build:\n%s", out)

	first := startParleyd(t, bin, "127.0.0.1:0")
	addr := strings.TrimSuffix(strings.TrimPrefix(first.url, "ws://"), "/rtc")
	restartScenario(t, first.url, first.stop, func() {
		second := startParleyd(t, bin, addr)
		require.Equal(t, first.url, second.url)
	})
}

// parleyd is a running parleyd process.
type parleyd struct {
	t      *testing.T
	cmd    *exec.Cmd
	url    string
	exited chan struct{} // closed once its stdout is at EOF (it exited)
	stderr *lockedBuffer
	once   sync.Once
}

var rtcURL = regexp.MustCompile(`ws://\S+/rtc`)

// startParleyd runs "parleyd serve" on listen, loopback only, and waits
// for the URL it prints. The test's cleanup stops it.
func startParleyd(t *testing.T, bin, listen string) *parleyd {
	t.Helper()
	p := &parleyd{t: t, exited: make(chan struct{}), stderr: new(lockedBuffer)}
	p.cmd = exec.Command(bin, "serve", "--listen", listen, "--udp-port", "0",
		"--app-id", restartAppID, "--app-key", restartAppKey)
	stdout, err := p.cmd.StdoutPipe()
	require.NoError(t, err)
	p.cmd.Stderr = p.stderr
	require.NoError(t, p.cmd.Start())
	t.Cleanup(p.stop)

	urls := make(chan string, 1)
	go func() {
		defer close(p.exited)
		sc := bufio.NewScanner(stdout)
		found := false
		for sc.Scan() { // read to EOF, or the process could block on a full pipe
			if u := rtcURL.FindString(sc.Text()); u != "" && !found {
				found = true
				urls <- u
			}
		}
	}()
	select {
	case p.url = <-urls:
	case <-p.exited:
		t.Fatalf("parleyd exited before serving; stderr:\n%s", p.stderr)
	case <-time.After(waitTimeout):
		t.Fatalf("parleyd printed no URL; stderr:\n%s", p.stderr)
	}
	return p
}

// stop sends SIGTERM and requires a clean exit (0) within the drain time;
// it runs once.
func (p *parleyd) stop() {
	p.once.Do(func() {
		t := p.t
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
		select {
		case <-p.exited:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
			t.Fatalf("parleyd did not exit after SIGTERM; stderr:\n%s", p.stderr)
		}
		err := p.cmd.Wait()
		if exitErr := (*exec.ExitError)(nil); errors.As(err, &exitErr) {
			t.Fatalf("parleyd exited with %d; stderr:\n%s", exitErr.ExitCode(), p.stderr)
		}
		require.NoError(t, err)
	})
}

// lockedBuffer is a strings.Builder safe for a process's writes and the
// test's reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
