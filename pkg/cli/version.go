package cli

import (
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// versionDoc is what `version -o json|yaml` prints. Everything comes from
// the build information the Go toolchain embeds, so there is no version
// variable to forget to set at release time.
type versionDoc struct {
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

func buildVersion() versionDoc {
	v := versionDoc{Version: "(unknown)", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// versionString is the short version, for the user agent.
func versionString() string {
	return buildVersion().Version
}

func newVersionCommand(c *common) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of meshcanary",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(cmd, output); err != nil {
				return err
			}
			v := buildVersion()
			if output != outputHuman {
				return printDoc(c.streams.Out, output, v)
			}
			commit := v.Commit
			if commit == "" {
				commit = "unknown"
			} else if len(commit) > 12 {
				commit = commit[:12]
			}
			if v.Modified {
				commit += "-dirty"
			}
			p := newPrinter(c.streams.Out)
			p.printf("meshcanary %s (commit %s, %s, %s)\n", v.Version, commit, v.GoVersion, v.Platform)
			return p.err
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}
