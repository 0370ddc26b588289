package testenv

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

func (e *Env) path(name string) string { return filepath.Join(e.Dir, name) }

func loopbackURL(scheme string, port int) string {
	return scheme + "://127.0.0.1:" + strconv.Itoa(port)
}

// writeCredentials makes the admin token and the service-account key pair.
func (e *Env) writeCredentials() error {
	tok := make([]byte, 24)
	if _, err := rand.Read(tok); err != nil {
		return fmt.Errorf("making admin token: %w", err)
	}
	e.token = hex.EncodeToString(tok)
	// system:masters bypasses RBAC, so tests are only ever denied as the
	// service accounts they create on purpose.
	if err := os.WriteFile(e.path("tokens.csv"), []byte(e.token+`,admin,admin,"system:masters"`+"\n"), 0o600); err != nil {
		return fmt.Errorf("writing token file: %w", err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("making service-account key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return fmt.Errorf("encoding service-account public key: %w", err)
	}
	if err := os.WriteFile(e.path("sa.key"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return fmt.Errorf("writing service-account key: %w", err)
	}
	if err := os.WriteFile(e.path("sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		return fmt.Errorf("writing service-account public key: %w", err)
	}
	return nil
}

func (e *Env) startEtcd(ctx context.Context) error {
	data := e.path("etcd")
	ports, _, err := e.startListening(ctx, "etcd", e.bins.etcd, 2,
		func(ports []int) []string {
			// A failed attempt may have initialised the data dir with its peer URL.
			_ = os.RemoveAll(data)
			client, peer := loopbackURL("http", ports[0]), loopbackURL("http", ports[1])
			return []string{
				"--name=testenv",
				"--data-dir=" + data,
				"--listen-client-urls=" + client,
				"--advertise-client-urls=" + client,
				"--listen-peer-urls=" + peer,
				"--initial-advertise-peer-urls=" + peer,
				"--initial-cluster=testenv=" + peer,
				// Durability is worthless for a throwaway cluster and fsync
				// dominates etcd's latency on slow disks.
				"--unsafe-no-fsync",
				"--log-level=warn",
			}
		},
		func(ctx context.Context, p *process, ports []int) error {
			url := loopbackURL("http", ports[0]) + "/health"
			return e.poll(ctx, p, "etcd ready", func(ctx context.Context) error {
				return e.expectBody(ctx, url, `"health":"true"`)
			})
		})
	if err != nil {
		return err
	}
	e.EtcdURL = loopbackURL("http", ports[0])
	return nil
}

// expectBody succeeds when url answers 200 with a body containing want.
func (e *Env) expectBody(ctx context.Context, url, want string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), want) {
		return fmt.Errorf("GET %s: %s %s", url, resp.Status, b)
	}
	return nil
}

func (e *Env) startAPIServer(ctx context.Context) error {
	ports, _, err := e.startListening(ctx, "kube-apiserver", e.bins.apiserver, 1,
		func(ports []int) []string {
			return []string{
				"--etcd-servers=" + e.EtcdURL,
				"--bind-address=127.0.0.1",
				"--advertise-address=127.0.0.1",
				"--secure-port=" + strconv.Itoa(ports[0]),
				"--cert-dir=" + e.path("apiserver-certs"),
				"--token-auth-file=" + e.path("tokens.csv"),
				"--authorization-mode=RBAC",
				"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
				"--service-account-key-file=" + e.path("sa.pub"),
				"--service-account-signing-key-file=" + e.path("sa.key"),
				// Room for the thousands of Services of a scale benchmark
				// (make bench-scale); nothing routes to these addresses.
				"--service-cluster-ip-range=10.0.0.0/16",
				// Nothing routes to the `kubernetes` Service here, and the
				// reconciler would only keep rewriting a loopback endpoint.
				"--endpoint-reconciler-type=none",
				"--enable-priority-and-fairness=false",
				"--profiling=false",
			}
		},
		func(ctx context.Context, p *process, ports []int) error {
			url := loopbackURL("https", ports[0]) + "/readyz"
			return e.poll(ctx, p, "kube-apiserver ready", func(ctx context.Context) error {
				return e.getOK(ctx, url, true)
			})
		})
	if err != nil {
		return err
	}
	e.APIServerURL = loopbackURL("https", ports[0])
	return nil
}

func (e *Env) setupClients() error {
	e.Config = e.restConfig(e.token)
	e.Kubeconfig = e.path("admin.kubeconfig")
	if err := writeKubeconfig(e.Kubeconfig, e.APIServerURL, "admin", e.token); err != nil {
		return err
	}
	var err error
	if e.kube, err = kubernetes.NewForConfig(e.Config); err != nil {
		return fmt.Errorf("making clientset: %w", err)
	}
	if e.dyn, err = dynamic.NewForConfig(e.Config); err != nil {
		return fmt.Errorf("making dynamic client: %w", err)
	}
	return nil
}

func (e *Env) startControllerManager(ctx context.Context) error {
	p, err := e.start("kube-controller-manager", e.bins.controllerManager, []string{
		"--kubeconfig=" + e.Kubeconfig,
		"--authentication-kubeconfig=" + e.Kubeconfig,
		"--authorization-kubeconfig=" + e.Kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--controllers=deployment-controller,replicaset-controller,serviceaccount-token-controller,serviceaccount-controller,namespace-controller,garbage-collector-controller",
		"--service-account-private-key-file=" + e.path("sa.key"),
		"--root-ca-file=" + filepath.Join(e.path("apiserver-certs"), "apiserver.crt"),
		// The defaults (20/30) throttle rollouts of many pods at once.
		"--kube-api-qps=100",
		"--kube-api-burst=200",
	})
	if err != nil {
		return err
	}
	// With no serving port there is no health endpoint; the "default"
	// ServiceAccount appearing proves the controllers are running.
	return e.poll(ctx, p, "kube-controller-manager running", func(ctx context.Context) error {
		_, err := e.kube.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		return err
	})
}

func (e *Env) startScheduler(ctx context.Context) error {
	_, _, err := e.startListening(ctx, "kube-scheduler", e.bins.scheduler, 1,
		func(ports []int) []string {
			return []string{
				"--kubeconfig=" + e.Kubeconfig,
				"--authentication-kubeconfig=" + e.Kubeconfig,
				"--authorization-kubeconfig=" + e.Kubeconfig,
				"--leader-elect=false",
				"--bind-address=127.0.0.1",
				"--secure-port=" + strconv.Itoa(ports[0]),
				"--cert-dir=" + e.path("scheduler-certs"),
			}
		},
		func(ctx context.Context, p *process, ports []int) error {
			// /readyz includes the informer sync, so pods get scheduled from here on.
			url := loopbackURL("https", ports[0]) + "/readyz"
			return e.poll(ctx, p, "kube-scheduler ready", func(ctx context.Context) error {
				return e.getOK(ctx, url, false)
			})
		})
	return err
}

// nodeName is the single fake node that kwok manages.
const nodeName = "kwok-node-0"

func (e *Env) startKwok(ctx context.Context) error {
	nodeErr := make(chan error, 1)
	go func() { nodeErr <- e.createNode(ctx) }()
	_, kwok, err := e.startListening(ctx, "kwok", e.bins.kwok, 1,
		func(ports []int) []string {
			return []string{
				"--kubeconfig=" + e.Kubeconfig,
				"--manage-all-nodes=false",
				"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
				"--server-address=127.0.0.1:" + strconv.Itoa(ports[0]),
				"--config=" + e.bins.kwokStages,
				// Pod, node and service IPs come from separate ranges so they
				// never look alike in the simulated data plane.
				"--cidr=10.244.0.1/16",
				"--node-ip=10.243.0.1",
			}
		},
		func(ctx context.Context, p *process, ports []int) error {
			url := loopbackURL("http", ports[0]) + "/healthz"
			return e.poll(ctx, p, "kwok serving", func(ctx context.Context) error {
				return e.getOK(ctx, url, false)
			})
		})
	if err := errors.Join(err, <-nodeErr); err != nil {
		return err
	}
	return e.poll(ctx, kwok, "node "+nodeName+" Ready and schedulable", func(ctx context.Context) error {
		n, err := e.kube.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(n.Spec.Taints) > 0 {
			return fmt.Errorf("node still has taints %v", n.Spec.Taints)
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("node not Ready yet: %v", n.Status.Conditions)
	})
}

// createNode registers the fake node. No kubelet or node-lifecycle controller
// exists to lift the not-ready taint that admission adds on creation, so it is
// removed here; kwok then reports the node Ready.
func (e *Env) createNode(ctx context.Context) error {
	capacity := corev1.ResourceList{
		corev1.ResourcePods:   resource.MustParse("10000"), // room for make bench-scale's thousands of pods
		corev1.ResourceCPU:    resource.MustParse("1000"),
		corev1.ResourceMemory: resource.MustParse("1Ti"),
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        nodeName,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
			Labels: map[string]string{
				"kubernetes.io/hostname": nodeName,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
				"type":                   "kwok",
			},
		},
		Status: corev1.NodeStatus{Capacity: capacity, Allocatable: capacity},
	}
	if _, err := e.kube.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating node %s: %w", nodeName, err)
	}
	// A merge patch ignores resourceVersion, so kwok's concurrent status
	// updates cannot make it conflict.
	if _, err := e.kube.CoreV1().Nodes().Patch(ctx, nodeName, types.MergePatchType,
		[]byte(`{"spec":{"taints":null}}`), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("removing taints of node %s: %w", nodeName, err)
	}
	return nil
}
