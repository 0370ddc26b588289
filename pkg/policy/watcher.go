package policy

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/fsnotify/fsnotify"
	"github.com/rs/zerolog"
)

// Watcher keeps a Store in step with a policy file.
//
// It watches the file's directory rather than the file: a ConfigMap volume
// updates by swapping the "..data" symlink the file resolves through, which
// a watch on the file itself never sees, and editors often replace a file
// instead of writing it. Any event in the directory re-reads the file, and a
// content hash keeps the many events of one update to a single reload.
type Watcher struct {
	path     string
	store    *Store
	onReload func(error)
	log      zerolog.Logger
	fsw      *fsnotify.Watcher
	lastSum  [sha256.Size]byte
}

// NewWatcher loads path into store and prepares to follow its changes. A
// file that cannot be loaded now is an error: the controller must not start
// on policies it has never seen. onReload, if not nil, hears the outcome of
// each later reload: nil, or the error that kept the previous policies; it
// is then the one to tell the user, and the Watcher logs at debug level
// only. onReload runs on Run's goroutine, so it must not block for long.
func NewWatcher(path string, store *Store, onReload func(err error), log zerolog.Logger) (*Watcher, error) {
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watching policy file: %w", err)
	}
	// Watch before the first read, so that a change in between still
	// produces an event.
	if err := fsw.Add(filepath.Dir(path)); err != nil {
		_ = fsw.Close()
		return nil, fmt.Errorf("watching policy file directory: %w", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		_ = fsw.Close()
		return nil, fmt.Errorf("reading policy file: %w", err)
	}
	f, err := Parse(data)
	if err != nil {
		_ = fsw.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	store.Set(f)
	return &Watcher{
		path:     path,
		store:    store,
		onReload: onReload,
		log:      log,
		fsw:      fsw,
		lastSum:  sha256.Sum256(data),
	}, nil
}

// Run follows the file until ctx ends, then releases the watch. It returns
// nil when ctx ends and an error only if the file system watch fails for
// good. Call it once.
func (w *Watcher) Run(ctx context.Context) error {
	defer func() { _ = w.fsw.Close() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return errors.New("policy file watch closed")
			}
			w.log.Debug().Str("event", ev.String()).Msg("policy directory changed")
			w.reload()
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return errors.New("policy file watch closed")
			}
			// Overflowed or failed watches lose events; re-reading now
			// catches up with whatever was missed.
			w.log.Warn().Err(err).Msg("policy file watch reported an error")
			w.reload()
		}
	}
}

func (w *Watcher) reload() {
	data, err := os.ReadFile(w.path)
	if errors.Is(err, fs.ErrNotExist) {
		// Editors and the kubelet remove before they create; the event of
		// the new file follows. Until then the last policies hold.
		w.log.Warn().Str("path", w.path).Msg("policy file is missing; keeping the last good policies")
		return
	}
	if err != nil {
		w.report(fmt.Errorf("reading policy file: %w", err))
		return
	}
	sum := sha256.Sum256(data)
	if sum == w.lastSum {
		return
	}
	w.lastSum = sum
	f, err := Parse(data)
	if err != nil {
		w.report(fmt.Errorf("%s: %w", w.path, err))
		return
	}
	w.store.Set(f)
	if w.onReload != nil {
		w.log.Debug().Str("path", w.path).Strs("policies", w.store.Names()).Msg("policies reloaded")
		w.onReload(nil)
		return
	}
	w.log.Info().Str("path", w.path).Strs("policies", w.store.Names()).Msg("policies reloaded")
}

// report hands a rejected file to onReload, which then owns telling the
// user; the Watcher logs it at error level only when nobody else will.
func (w *Watcher) report(err error) {
	w.store.SetRejected(err)
	if w.onReload != nil {
		w.log.Debug().Err(err).Msg("policy file rejected; keeping the last good policies")
		w.onReload(err)
		return
	}
	w.log.Error().Err(err).Msg("policy file rejected; keeping the last good policies")
}
