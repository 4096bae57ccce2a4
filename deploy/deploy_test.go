// Package deploy_test checks the deploy recipes in this directory: that they
// parse, and that the facts the recipes and deploy/README.md state hold.
//
// YAML is converted to JSON by /usr/bin/python3 with Debian's python3-yaml
// (scripts/install-test-deps installs it), so the module needs no YAML
// dependency.
package deploy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// defaultShutdown is CABLECAR_SHUTDOWN_TIMEOUT's default (docs/reference.md, Settings).
const defaultShutdown = 30 * time.Second

// yamlDocs decodes every document of a YAML file into out, a pointer to a
// slice.
func yamlDocs(t *testing.T, path string, out any) {
	t.Helper()
	const py = "import json, sys, yaml\n" +
		"json.dump(list(yaml.safe_load_all(open(sys.argv[1], encoding='utf-8'))), sys.stdout)\n"
	cmd := exec.Command("/usr/bin/python3", "-c", py, path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	js, err := cmd.Output()
	if err != nil {
		t.Fatalf("YAML→JSON of %s with /usr/bin/python3 (python3-yaml; run scripts/install-test-deps): %v\n%s", path, err, stderr.String())
	}
	if err := json.Unmarshal(js, out); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

type composeFile struct {
	Services map[string]composeService `json:"services"`
}

type composeService struct {
	Image           string            `json:"image"`
	Build           *composeBuild     `json:"build"`
	Command         []string          `json:"command"`
	Environment     map[string]string `json:"environment"`
	Healthcheck     *struct{ Test []string }
	DependsOn       map[string]struct{ Condition string } `json:"depends_on"`
	StopGracePeriod string                                `json:"stop_grace_period"`
	Ports           []string                              `json:"ports"`
}

type composeBuild struct {
	Context    string `json:"context"`
	Dockerfile string `json:"dockerfile"`
}

func TestCompose(t *testing.T) {
	var docs []composeFile
	yamlDocs(t, "docker-compose.yml", &docs)
	if len(docs) != 1 {
		t.Fatalf("docker-compose.yml: %d documents, want 1", len(docs))
	}
	svcs := docs[0].Services
	for _, name := range []string{"app", "worker", "redis", "cablecar"} {
		if _, ok := svcs[name]; !ok {
			t.Errorf("service %q missing", name)
		}
	}

	redis := svcs["redis"]
	if i := slices.Index(redis.Command, "--maxmemory-policy"); i < 0 || i+1 >= len(redis.Command) || redis.Command[i+1] != "noeviction" {
		t.Errorf("redis command %q: want --maxmemory-policy noeviction", redis.Command)
	}
	if redis.Healthcheck == nil || len(redis.Healthcheck.Test) == 0 {
		t.Error("redis has no healthcheck, so condition service_healthy would never be met")
	}

	cc := svcs["cablecar"]
	if cc.Build == nil {
		t.Fatal("cablecar: no build section")
	}
	dockerfile := filepath.Join(cc.Build.Context, orDefault(cc.Build.Dockerfile, "Dockerfile"))
	if _, err := os.Stat(dockerfile); err != nil {
		t.Errorf("cablecar builds from %s: %v", dockerfile, err)
	}
	// The image has no shell: the check must exec the binary the Dockerfile
	// installs.
	if cc.Healthcheck == nil || !slices.Equal(cc.Healthcheck.Test, []string{"CMD", "/usr/local/bin/cablecar", "healthcheck"}) {
		t.Errorf("cablecar healthcheck %v: want [CMD /usr/local/bin/cablecar healthcheck]", cc.Healthcheck)
	}
	if !strings.Contains(readFile(t, dockerfile), " /usr/local/bin/cablecar\n") {
		t.Errorf("%s no longer installs /usr/local/bin/cablecar, which the healthcheck runs", dockerfile)
	}
	if c := cc.DependsOn["redis"].Condition; c != "service_healthy" {
		t.Errorf("cablecar depends_on redis condition %q, want service_healthy", c)
	}
	for _, k := range []string{"CABLECAR_REDIS_URL", "CABLECAR_CHANNEL_PREFIX", "CABLECAR_JWT_SECRET", "CABLECAR_ROUTES"} {
		if cc.Environment[k] == "" {
			t.Errorf("cablecar environment lacks %s", k)
		}
	}
	if u := cc.Environment["CABLECAR_REDIS_URL"]; !strings.HasPrefix(u, "redis://redis:") {
		t.Errorf("CABLECAR_REDIS_URL %q does not point at the redis service", u)
	}
	if s := cc.Environment["CABLECAR_JWT_SECRET"]; !strings.HasPrefix(s, "${") {
		t.Errorf("CABLECAR_JWT_SECRET is a literal, want it from the env file: %q", s)
	}
	drain := shutdownTimeout(t, cc.Environment["CABLECAR_SHUTDOWN_TIMEOUT"])
	grace, err := time.ParseDuration(cc.StopGracePeriod)
	if err != nil || grace <= drain {
		t.Errorf("cablecar stop_grace_period %q: want a duration above the %v drain (compose's default is 10s)", cc.StopGracePeriod, drain)
	}
}

type k8sObject struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec json.RawMessage `json:"spec"`
}

type deploymentSpec struct {
	Template struct {
		Metadata struct {
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
		Spec podSpec `json:"spec"`
	} `json:"template"`
}

type podSpec struct {
	TerminationGracePeriodSeconds *int             `json:"terminationGracePeriodSeconds"`
	SecurityContext               *securityContext `json:"securityContext"`
	Containers                    []container      `json:"containers"`
}

type securityContext struct {
	RunAsNonRoot             *bool `json:"runAsNonRoot"`
	RunAsUser                *int  `json:"runAsUser"`
	ReadOnlyRootFilesystem   *bool `json:"readOnlyRootFilesystem"`
	AllowPrivilegeEscalation *bool `json:"allowPrivilegeEscalation"`
	Capabilities             *struct {
		Drop []string `json:"drop"`
	} `json:"capabilities"`
}

type container struct {
	Name  string `json:"name"`
	Image string `json:"image"`
	Ports []struct {
		Name          string `json:"name"`
		ContainerPort int    `json:"containerPort"`
	} `json:"ports"`
	Env []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"env"`
	ReadinessProbe *probe `json:"readinessProbe"`
	LivenessProbe  *probe `json:"livenessProbe"`
	Lifecycle      *struct {
		PreStop *struct {
			Sleep *struct {
				Seconds int `json:"seconds"`
			} `json:"sleep"`
		} `json:"preStop"`
	} `json:"lifecycle"`
	Resources struct {
		Requests map[string]string `json:"requests"`
		Limits   map[string]string `json:"limits"`
	} `json:"resources"`
	SecurityContext *securityContext `json:"securityContext"`
}

type probe struct {
	HTTPGet *struct {
		Path string          `json:"path"`
		Port json.RawMessage `json:"port"`
	} `json:"httpGet"`
}

type serviceSpec struct {
	Selector map[string]string `json:"selector"`
	Ports    []struct {
		Name       string          `json:"name"`
		Port       int             `json:"port"`
		TargetPort json.RawMessage `json:"targetPort"`
	} `json:"ports"`
}

func TestKubernetes(t *testing.T) {
	var objs []k8sObject
	yamlDocs(t, "kubernetes/cablecar.yaml", &objs)
	var dep *deploymentSpec
	var svc *serviceSpec
	for _, o := range objs {
		switch o.Kind {
		case "Deployment":
			dep = new(deploymentSpec)
			mustUnmarshal(t, o.Spec, dep)
		case "Service":
			svc = new(serviceSpec)
			mustUnmarshal(t, o.Spec, svc)
		}
	}
	if dep == nil || svc == nil {
		t.Fatalf("want a Deployment and a Service, got kinds %v", objs)
	}
	pod := dep.Template.Spec
	if len(pod.Containers) != 2 {
		t.Fatalf("pod has %d containers, want 2 (app + cablecar)", len(pod.Containers))
	}
	var cc, app *container
	for i := range pod.Containers {
		if pod.Containers[i].Name == "cablecar" {
			cc = &pod.Containers[i]
		} else {
			app = &pod.Containers[i]
		}
	}
	if cc == nil || app == nil {
		t.Fatal("want an app container and a container named cablecar")
	}
	env := map[string]string{}
	for _, e := range cc.Env {
		env[e.Name] = e.Value
	}

	// Probes: /health on 8080, by number or by the port's name.
	for name, p := range map[string]*probe{"readiness": cc.ReadinessProbe, "liveness": cc.LivenessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("cablecar %s probe: want httpGet", name)
			continue
		}
		if p.HTTPGet.Path != "/health" || resolvePort(t, cc, p.HTTPGet.Port) != 8080 {
			t.Errorf("cablecar %s probe: %s on %s, want /health on 8080", name, p.HTTPGet.Path, p.HTTPGet.Port)
		}
	}

	// Shutdown: the grace period covers preStop sleep + drain.
	drain := shutdownTimeout(t, env["CABLECAR_SHUTDOWN_TIMEOUT"])
	preStop := 0
	if cc.Lifecycle != nil && cc.Lifecycle.PreStop != nil && cc.Lifecycle.PreStop.Sleep != nil {
		preStop = cc.Lifecycle.PreStop.Sleep.Seconds
	}
	if preStop <= 0 {
		t.Error("cablecar: want a preStop sleep, so the pod leaves the endpoints before SIGTERM")
	}
	need := drain + time.Duration(preStop)*time.Second
	if g := pod.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second < need {
		t.Errorf("terminationGracePeriodSeconds %v: want ≥ %v (CABLECAR_SHUTDOWN_TIMEOUT %v + preStop %ds)", deref(g), need, drain, preStop)
	}

	// Security.
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Error("pod securityContext: want runAsNonRoot: true")
	}
	if psc == nil || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Error("pod securityContext: want a non-zero runAsUser (the image's USER is a name, which runAsNonRoot cannot check)")
	}
	csc := cc.SecurityContext
	if csc == nil || csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
		t.Error("cablecar: want readOnlyRootFilesystem: true")
	}
	if csc == nil || csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
		t.Error("cablecar: want allowPrivilegeEscalation: false")
	}
	if csc == nil || csc.Capabilities == nil || !slices.Equal(csc.Capabilities.Drop, []string{"ALL"}) {
		t.Error("cablecar: want capabilities drop [ALL]")
	}

	// Resources: set, and the memory request holds 10,000 connections at
	// the 3.5 KB each measured in docs/benchmarks.md, plus 200 slow
	// clients' queues at the default CABLECAR_MAX_PENDING_BYTES (1 MiB).
	for _, k := range []string{"cpu", "memory"} {
		if cc.Resources.Requests[k] == "" {
			t.Errorf("cablecar: no %s request", k)
		}
	}
	if cc.Resources.Limits["memory"] == "" {
		t.Error("cablecar: no memory limit")
	}
	req, lim := bytesQuantity(t, cc.Resources.Requests["memory"]), bytesQuantity(t, cc.Resources.Limits["memory"])
	if want := int64(10_000*3_500 + 200<<20); req < want || lim < req {
		t.Errorf("cablecar memory request %d, limit %d: want request ≥ %d and limit ≥ request", req, lim, want)
	}

	// Service: selects the pod, exposes the cable, not the admin port.
	for k, v := range svc.Selector {
		if dep.Template.Metadata.Labels[k] != v {
			t.Errorf("Service selector %s=%s does not match the pod's labels", k, v)
		}
	}
	exposed := map[int]bool{}
	for _, p := range svc.Ports {
		target := resolvePort(t, cc, p.TargetPort)
		if target == 0 {
			target = resolvePort(t, app, p.TargetPort)
		}
		exposed[target] = true
		if p.Port == 9090 {
			t.Errorf("Service port %s is 9090", p.Name)
		}
	}
	if !exposed[8080] {
		t.Error("Service does not expose cablecar's 8080")
	}
	if exposed[9090] {
		t.Error("Service exposes the admin port 9090")
	}
	if a := dep.Template.Metadata.Annotations; a["prometheus.io/port"] != "9090" {
		t.Errorf("pod annotation prometheus.io/port %q, want 9090 (the admin listener)", a["prometheus.io/port"])
	}
	if env["CABLECAR_ADMIN_ADDR"] != ":9090" {
		t.Errorf("CABLECAR_ADMIN_ADDR %q: the annotations scrape 9090 on the pod IP, so it must listen there", env["CABLECAR_ADMIN_ADDR"])
	}
}

// resolvePort returns the container port a probe or Service refers to, by
// number or by name; 0 when c has no such port.
func resolvePort(t *testing.T, c *container, raw json.RawMessage) int {
	t.Helper()
	var n int
	if json.Unmarshal(raw, &n) == nil {
		return n
	}
	var name string
	mustUnmarshal(t, raw, &name)
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// bytesQuantity parses the Kubernetes memory quantities used here: a
// number with an optional Ki/Mi/Gi or k/M/G suffix.
func bytesQuantity(t *testing.T, q string) int64 {
	t.Helper()
	units := []struct {
		suffix string
		mult   int64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(q, u.suffix); ok {
			n, err := strconv.ParseInt(num, 10, 64)
			if err != nil {
				t.Fatalf("memory quantity %q: %v", q, err)
			}
			return n * u.mult
		}
	}
	panic("unreachable")
}

// unit is a parsed systemd unit file: section → key → values in order.
type unit map[string]map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(readFile(t, path)))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not key=value in a section: %q", path, n, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

func TestSystemdUnit(t *testing.T) {
	const path = "systemd/cablecar.service"
	u := parseUnit(t, path)
	svc := u["Service"]
	if svc == nil {
		t.Fatal("no [Service] section")
	}
	last := func(k string) string {
		if v := svc[k]; len(v) > 0 {
			return v[len(v)-1]
		}
		return ""
	}
	for k, want := range map[string]string{
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"CapabilityBoundingSet":   "",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"SystemCallFilter":        "@system-service",
		"EnvironmentFile":         "/etc/cablecar/env",
		"Restart":                 "on-failure",
		"KillSignal":              "SIGTERM",
	} {
		if _, ok := svc[k]; !ok || last(k) != want {
			t.Errorf("[Service] %s=%q, want %q", k, last(k), want)
		}
	}
	if last("DynamicUser") != "yes" && last("User") == "" {
		t.Error("want DynamicUser=yes or a dedicated User=")
	}
	if n, err := strconv.Atoi(last("LimitNOFILE")); err != nil || n < 20_000 {
		t.Errorf("LimitNOFILE=%q: want a number well above the 1024 default (one fd per connection)", last("LimitNOFILE"))
	}
	if !strings.HasPrefix(last("ExecStart"), "/usr/local/bin/cablecar serve") {
		t.Errorf("ExecStart=%q", last("ExecStart"))
	}
	drain := shutdownTimeout(t, envFile(t, "systemd/env.example")["CABLECAR_SHUTDOWN_TIMEOUT"])
	stop, err := time.ParseDuration(last("TimeoutStopSec"))
	if err != nil || stop <= drain {
		t.Errorf("TimeoutStopSec=%q: want a duration above the %v drain", last("TimeoutStopSec"), drain)
	}
	if len(u["Install"]["WantedBy"]) == 0 {
		t.Error("no [Install] WantedBy=")
	}

	// systemd's own check. It needs ExecStart to name an existing binary, so
	// verify a copy that points at a fresh build. Unknown keys are only
	// warnings (exit 0), so any output fails.
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not found: checked the unit's keys only")
		return
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "cablecar")
	build := exec.Command("go", "build", "-o", bin, "./cmd/cablecar")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	text := strings.Replace(readFile(t, path), "ExecStart=/usr/local/bin/cablecar ", "ExecStart="+bin+" ", 1)
	copyPath := filepath.Join(dir, "cablecar.service")
	if err := os.WriteFile(copyPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", copyPath).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestSettingNamesAreReal checks that every CABLECAR_* name in deploy/ is
// a row of the settings table in docs/reference.md.
func TestSettingNamesAreReal(t *testing.T) {
	known := map[string]bool{}
	row := regexp.MustCompile("^\\| `(CABLECAR_[A-Z0-9_]+)` \\|")
	for _, line := range strings.Split(readFile(t, "../docs/reference.md"), "\n") {
		if m := row.FindStringSubmatch(line); m != nil {
			known[m[1]] = true
		}
	}
	if len(known) < 20 {
		t.Fatalf("found only %d settings in docs/reference.md's table; has its format changed?", len(known))
	}
	name := regexp.MustCompile(`CABLECAR_[A-Z0-9_]*[A-Z0-9]`)
	used := 0
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, "_test.go") {
			return err
		}
		for _, n := range name.FindAllString(readFile(t, path), -1) {
			used++
			if !known[n] {
				t.Errorf("%s uses %s, which is not in docs/reference.md's settings table", path, n)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if used == 0 {
		t.Fatal("no CABLECAR_* names found in deploy/")
	}
}

// shutdownTimeout parses a CABLECAR_SHUTDOWN_TIMEOUT value; empty is the
// default.
func shutdownTimeout(t *testing.T, v string) time.Duration {
	t.Helper()
	if v == "" {
		return defaultShutdown
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("CABLECAR_SHUTDOWN_TIMEOUT %q: %v", v, err)
	}
	return d
}

// envFile reads KEY=VALUE lines, skipping comments.
func envFile(t *testing.T, path string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, line := range strings.Split(readFile(t, path), "\n") {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			m[k] = v
		}
	}
	return m
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustUnmarshal(t *testing.T, raw json.RawMessage, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
}

func orDefault(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}
