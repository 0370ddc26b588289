package cli

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/meshcanary/meshcanary/pkg/annotations"
)

// completionTimeout bounds the one list call a completion makes: a shell
// waiting on an unreachable cluster is worse than no completion.
const completionTimeout = 3 * time.Second

// completeDeployments completes the names of opted-in Deployments of the
// namespace the flags select.
func completeDeployments(c *common) cobra.CompletionFunc {
	return completeDeploymentsWhere(c, true)
}

// completeAnyDeployment completes every Deployment's name, for commands
// that work before a Deployment is opted in (init, lint).
func completeAnyDeployment(c *common) cobra.CompletionFunc {
	return completeDeploymentsWhere(c, false)
}

func completeDeploymentsWhere(c *common, optedIn bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		cl, err := c.kube.connect()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
		defer cancel()
		list, err := cl.kube.AppsV1().Deployments(cl.namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		var names []string
		for _, d := range list.Items {
			if optedIn && !annotations.IsEnabled(d.Annotations) {
				continue
			}
			if strings.HasPrefix(d.Name, toComplete) {
				names = append(names, d.Name)
			}
		}
		slices.Sort(names)
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

// registerKubeFlagCompletion completes -n and --context. The flags are
// shared by every operator command and cobra keys completions by flag, so
// this runs once, on any one command that has them.
func registerKubeFlagCompletion(cmd *cobra.Command, c *common) {
	_ = cmd.RegisterFlagCompletionFunc(clientcmd.FlagNamespace, func(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		cl, err := c.kube.connect()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
		defer cancel()
		list, err := cl.kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		var names []string
		for _, ns := range list.Items {
			if strings.HasPrefix(ns.Name, toComplete) {
				names = append(names, ns.Name)
			}
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	})
	_ = cmd.RegisterFlagCompletionFunc(clientcmd.FlagContext, func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		raw, err := c.kube.clientConfig().RawConfig()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		return slices.Sorted(maps.Keys(raw.Contexts)), cobra.ShellCompDirectiveNoFileComp
	})
}
