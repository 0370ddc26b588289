package policy

import (
	"reflect"
	"sync"
	"testing"
	"time"
)

func TestStore(t *testing.T) {
	custom := Default()
	custom.Name = "payments"
	custom.Interval = Duration{30 * time.Second}
	ownDefault := Default()
	ownDefault.FailureLimit = 4

	tests := []struct {
		name      string
		file      *File
		get       string
		want      Policy
		wantFound bool
		wantNames []string
	}{
		{
			name: "a new store resolves default to the built-in policy", get: "default",
			want: Default(), wantFound: true, wantNames: []string{"default"},
		},
		{
			name: "a named policy from the file is returned", file: &File{Policies: []Policy{custom}}, get: "payments",
			want: custom, wantFound: true, wantNames: []string{"default", "payments"},
		},
		{
			name: "default still resolves when the file does not define it", file: &File{Policies: []Policy{custom}}, get: "default",
			want: Default(), wantFound: true, wantNames: []string{"default", "payments"},
		},
		{
			name: "a file's own default policy replaces the built-in one", file: &File{Policies: []Policy{ownDefault}}, get: "default",
			want: ownDefault, wantFound: true, wantNames: []string{"default"},
		},
		{
			name: "an unknown name is not found", file: &File{Policies: []Policy{custom}}, get: "checkout",
			wantFound: false, wantNames: []string{"default", "payments"},
		},
		{
			name: "setting nil leaves only the built-in default", file: nil, get: "payments",
			wantFound: false, wantNames: []string{"default"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewStore()
			s.Set(&File{Policies: []Policy{{Name: "stale"}}})
			s.Set(tt.file)
			got, found := s.Get(tt.get)
			if found != tt.wantFound || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Get(%q) = %+v, %v; want %+v, %v", tt.get, got, found, tt.want, tt.wantFound)
			}
			if names := s.Names(); !reflect.DeepEqual(names, tt.wantNames) {
				t.Errorf("Names() = %v; want %v", names, tt.wantNames)
			}
		})
	}
}

func TestStoreHandsOutCopies(t *testing.T) {
	f := &File{Policies: []Policy{Default()}}
	f.Policies[0].Name = "p"
	s := NewStore()
	s.Set(f)

	// Neither the caller's file nor a policy handed out may reach into the
	// store, or one reconcile could change another's policy.
	f.Policies[0].Stages[0].Weight = 99
	got, _ := s.Get("p")
	*got.Checks[0].Max = Value{Raw: "90%", Number: 0.9, Unit: UnitPercent}
	got.Stages[1].Weight = 98

	again, _ := s.Get("p")
	if again.Stages[0].Weight != 1 || again.Stages[1].Weight != 10 || again.Checks[0].Max.Number != 0.05 {
		t.Fatalf("the stored policy changed through a copy: %+v", again)
	}
}

func TestStoreIsSafeForConcurrentUse(t *testing.T) {
	s := NewStore()
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 200 {
				if i%2 == 0 {
					p := Default()
					p.Name = "p"
					p.MinRequests = j + 1
					s.Set(&File{Policies: []Policy{p}})
				} else if _, ok := s.Get("default"); !ok {
					t.Error("default must always resolve")
				}
				_ = s.Names()
			}
		})
	}
	wg.Wait()
}
