package policy

import (
	"maps"
	"slices"
	"sync"
)

// Store holds the policies in force. Reconcilers read it concurrently while
// the Watcher replaces its content, so it hands out copies: a policy in use
// for one decision never changes underneath it.
type Store struct {
	mu       sync.RWMutex
	policies map[string]Policy
	// rejected is why the newest policies file was refused, so a
	// Deployment that needs a policy only that file defines can say so.
	rejected error
}

// NewStore returns a Store that knows only the built-in default policy.
func NewStore() *Store {
	return &Store{policies: map[string]Policy{}}
}

// Set replaces every policy with those of f; nil leaves only the built-in
// default. Set copies f, so the caller may reuse it.
func (s *Store) Set(f *File) {
	policies := map[string]Policy{}
	if f != nil {
		for _, p := range f.Policies {
			policies[p.Name] = p.DeepCopy()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.policies = policies
	s.rejected = nil
}

// SetRejected records that the newest policies file was refused (nil
// clears it); the policies already in the store stay in force.
func (s *Store) SetRejected(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejected = err
}

// Rejected is why the newest policies file was refused, or nil.
func (s *Store) Rejected() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.rejected
}

// Get returns the named policy. "default" always resolves, to the file's
// policy of that name if there is one, so that a file may retune the
// default without every Deployment naming a policy.
func (s *Store) Get(name string) (Policy, bool) {
	s.mu.RLock()
	p, ok := s.policies[name]
	s.mu.RUnlock()
	switch {
	case ok:
		return p.DeepCopy(), true
	case name == DefaultPolicyName:
		return Default(), true
	default:
		return Policy{}, false
	}
}

// Names lists, sorted, every name Get resolves, "default" included.
func (s *Store) Names() []string {
	s.mu.RLock()
	names := slices.Collect(maps.Keys(s.policies))
	s.mu.RUnlock()
	if !slices.Contains(names, DefaultPolicyName) {
		names = append(names, DefaultPolicyName)
	}
	slices.Sort(names)
	return names
}

// DeepCopy returns a copy of p sharing no memory with it.
func (p Policy) DeepCopy() Policy {
	out := p
	out.Checks = copyChecks(p.Checks)
	if p.Metrics != nil {
		out.Metrics = maps.Clone(p.Metrics)
	}
	if p.Stages != nil {
		out.Stages = make([]Stage, len(p.Stages))
		for i, s := range p.Stages {
			s.CanaryReplicas = clonePtr(s.CanaryReplicas)
			s.Checks = copyChecks(s.Checks)
			out.Stages[i] = s
		}
	}
	out.Freeze = slices.Clone(p.Freeze)
	if p.Rules != nil {
		out.Rules = make([]Rule, len(p.Rules))
		for i, r := range p.Rules {
			r.Notify = slices.Clone(r.Notify)
			out.Rules[i] = r
		}
	}
	if p.Gates != nil {
		out.Gates = make([]Gate, len(p.Gates))
		for i, g := range p.Gates {
			g.Retries = clonePtr(g.Retries)
			out.Gates[i] = g
		}
	}
	if p.Notify != nil {
		out.Notify = make([]NotifyRoute, len(p.Notify))
		for i, r := range p.Notify {
			r.On = slices.Clone(r.On)
			out.Notify[i] = r
		}
	}
	return out
}

// ChecksFor returns the checks that judge stage i: the stage's own when it
// lists any, else the policy's.
func (p Policy) ChecksFor(i int) []Check {
	if i >= 0 && i < len(p.Stages) && len(p.Stages[i].Checks) > 0 {
		return p.Stages[i].Checks
	}
	return p.Checks
}

func copyChecks(checks []Check) []Check {
	if checks == nil {
		return nil
	}
	out := make([]Check, len(checks))
	for i, c := range checks {
		c.Max = clonePtr(c.Max)
		c.Min = clonePtr(c.Min)
		c.MaxIncrease = clonePtr(c.MaxIncrease)
		c.MaxRatio = clonePtr(c.MaxRatio)
		out[i] = c
	}
	return out
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
