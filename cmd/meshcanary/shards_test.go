package main

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestShardAndElectionFlagsAreValidated(t *testing.T) {
	cases := map[string]struct {
		args []string
		want string // in the error; "" means valid
	}{
		"one shard, today's single leader":               {[]string{"--shards=1"}, ""},
		"three shards, leader election implied":          {[]string{"--shards=3"}, ""},
		"three shards with leader election said as well": {[]string{"--shards=3", "--leader-elect"}, ""},
		"no shard at all":                                {[]string{"--shards=0"}, "--shards"},
		"a negative number of shards":                    {[]string{"--shards=-2"}, "--shards"},
		"short leases, as the end-to-end tests use": {[]string{
			"--leader-election-lease-duration=4s", "--leader-election-renew-deadline=2s", "--leader-election-retry-period=500ms"}, ""},
		"a lease duration the Lease cannot record, in fractions of a second": {
			[]string{"--leader-election-lease-duration=2500ms", "--leader-election-renew-deadline=2s", "--leader-election-retry-period=500ms"},
			"--leader-election-lease-duration"},
		"a lease under a second, which the Lease records as none": {
			[]string{"--leader-election-lease-duration=500ms", "--leader-election-renew-deadline=400ms", "--leader-election-retry-period=100ms"},
			"--leader-election-lease-duration"},
		"a renew deadline as long as the lease, leaving no time between stopping and the takeover": {
			[]string{"--leader-election-renew-deadline=15s"}, "--leader-election-renew-deadline"},
		"a retry period that no renewal fits in before the deadline": {
			[]string{"--leader-election-retry-period=9s"}, "--leader-election-retry-period"},
		"no retry period": {[]string{"--leader-election-retry-period=0s"}, "--leader-election-retry-period"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			o := &controllerOptions{}
			fs := pflag.NewFlagSet("controller", pflag.ContinueOnError)
			o.BindFlags(fs)
			if err := fs.Parse(c.args); err != nil {
				t.Fatal(err)
			}
			err := o.validate()
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("error %v, want one naming %s", err, c.want)
			}
		})
	}
}

func TestTheDefaultsKeepTodaysLeaderElection(t *testing.T) {
	cmd := newControllerCommand()
	for flag, want := range map[string]string{
		"shards":                         "1",
		"leader-election-lease-duration": "15s",
		"leader-election-renew-deadline": "10s",
		"leader-election-retry-period":   "2s",
	} {
		if f := cmd.Flags().Lookup(flag); f == nil || f.DefValue != want {
			t.Errorf("--%s defaults to %v, want %s", flag, f, want)
		}
	}
}

func TestOnlyShardedReplicasFilterTheirRollouts(t *testing.T) {
	cases := map[string]struct {
		shards   int
		wantNil  bool
		wantOwns bool // for any key, before the elector holds a shard
	}{
		"one shard owns every rollout, with no filter at all":         {1, true, false},
		"three shards own nothing until a shard Lease is held":        {3, false, false},
		"a shard count below one is refused earlier and filters none": {0, true, false},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var own owner
			owns := own.ownsFunc(c.shards)
			if (owns == nil) != c.wantNil {
				t.Fatalf("Owns is nil: %t, want %t", owns == nil, c.wantNil)
			}
			if owns != nil && owns("payments/checkout") != c.wantOwns {
				t.Errorf("owns payments/checkout: %t, want %t", !c.wantOwns, c.wantOwns)
			}
		})
	}
}
