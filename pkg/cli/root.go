package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// pluginPrefix is how kubectl finds plugins on PATH: `kubectl meshcanary`
// runs the first `kubectl-meshcanary` it finds.
const pluginPrefix = "kubectl-"

// NewRootCommand returns a `meshcanary` root holding the operator commands
// only, printing to streams. The binary's own root also holds `controller`;
// this one is for tests and for embedding.
func NewRootCommand(streams genericiooptions.IOStreams) *cobra.Command {
	root := &cobra.Command{
		Use:           "meshcanary",
		Short:         "Safe, staged canary releases on Istio",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	AddCommands(root, streams)
	return root
}

// AddCommands adds the operator commands to root and makes root report
// usage errors as such (see ExitCode). Each command gets kubectl's
// connection flags.
func AddCommands(root *cobra.Command, streams genericiooptions.IOStreams) {
	kube := newKubeFlags()
	o := &common{streams: streams, kube: kube}
	cmds := []*cobra.Command{
		newStatusCommand(o),
		newListCommand(o),
		newHistoryCommand(o),
		newRollbackCommand(o),
		newPromoteCommand(o),
		newPauseCommand(o),
		newResumeCommand(o),
		newApproveCommand(o),
		newRetryCommand(o),
		newInitCommand(o),
		newLintCommand(o),
	}
	for _, c := range cmds {
		c.Flags().AddFlagSet(kube.flags)
		root.AddCommand(c)
	}
	registerKubeFlagCompletion(cmds[0], o)
	root.AddCommand(newVersionCommand(o))

	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{cmd: c, err: err}
	})
	if strings.HasPrefix(filepath.Base(os.Args[0]), pluginPrefix) {
		// Installed as a kubectl plugin: help and completion should say
		// `kubectl meshcanary`, which is what the user types.
		if root.Annotations == nil {
			root.Annotations = map[string]string{}
		}
		root.Annotations[cobra.CommandDisplayNameAnnotation] = "kubectl meshcanary"
	}
}

// common is what every operator command shares: where to print and how to
// reach the cluster.
type common struct {
	streams genericiooptions.IOStreams
	kube    *kubeFlags
}

// usageError is a mistake in how a command was called (arguments, flags):
// exit code 2, with a pointer to the command's help.
type usageError struct {
	cmd *cobra.Command
	err error
}

func (e usageError) Error() string {
	if e.cmd == nil {
		return e.err.Error()
	}
	return fmt.Sprintf("%v\nSee '%s --help' for usage.", e.err, e.cmd.CommandPath())
}

func (e usageError) Unwrap() error { return e.err }

func usagef(cmd *cobra.Command, format string, args ...any) error {
	return usageError{cmd: cmd, err: fmt.Errorf(format, args...)}
}

// problemsError says that a command completed its job and found problems
// (lint), which it already printed: exit code 1.
type problemsError struct{ n int }

func (e problemsError) Error() string {
	if e.n == 1 {
		return "1 problem found"
	}
	return fmt.Sprintf("%d problems found", e.n)
}

// Exit codes of the binary.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// ExitCode maps an error returned by a command to the process exit code:
// 0 for nil, 2 for usage errors, 1 for everything else.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ue usageError
	if errors.As(err, &ue) {
		return ExitUsage
	}
	// Cobra reports unknown subcommands and flag group violations with
	// plain errors, without going through the flag error function.
	msg := err.Error()
	for _, prefix := range []string{"unknown command ", "required flag(s)", "if any flags in the group"} {
		if strings.HasPrefix(msg, prefix) {
			return ExitUsage
		}
	}
	return ExitFailure
}

// deploymentArg accepts kubectl's spellings of a Deployment: "x",
// "deployment/x", "deploy/x", "deployments/x", "deployment.apps/x".
func deploymentArg(cmd *cobra.Command, arg string) (string, error) {
	name := arg
	if kind, rest, ok := strings.Cut(arg, "/"); ok {
		switch strings.ToLower(kind) {
		case "deployment", "deployments", "deploy", "deployment.apps", "deployments.apps":
			name = rest
		default:
			return "", usagef(cmd, "%q: expected the name of a Deployment, not a %s", arg, kind)
		}
	}
	if name == "" {
		return "", usagef(cmd, "expected the name of a Deployment, got %q", arg)
	}
	return name, nil
}

// oneDeployment is the positional argument check of commands that act on
// one Deployment.
func oneDeployment(cmd *cobra.Command, args []string) error {
	switch len(args) {
	case 1:
		_, err := deploymentArg(cmd, args[0])
		return err
	case 0:
		return usagef(cmd, "expected the name of a Deployment")
	}
	return usagef(cmd, "expected one Deployment name, got %d arguments: %s", len(args), strings.Join(args, " "))
}

// noArgs is cobra.NoArgs reported as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef(cmd, "unexpected arguments: %s", strings.Join(args, " "))
	}
	return nil
}
