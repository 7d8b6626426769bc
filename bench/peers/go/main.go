// Command parleypeers runs the Go peer of Parley's concurrency benchmarks
// (the workload table in ../README.md; README.md here says how each maps onto Go) and prints
// one JSON line per result on stdout. Diagnostics go to stderr only.
//
// Each workload runs in a fresh child process (this binary re-executed with
// one workload name), so that goroutines, stacks and heap left over by one
// workload cannot make the next one faster or hide its memory growth.
package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"strconv"
	"time"
)

const childEnv = "PARLEY_PEERS_GO_CHILD"

type workload struct {
	name string
	run  func()
}

// The README's order. remote-pp and remote-tput have no Go peer.
var workloads = []workload{
	{"skynet", runSkynet},
	{"genserver-call", runGenserverCall},
	{"ping-pong", runPingPong},
	{"spawn-idle", runSpawnIdle}, // prints spawn-idle.spawn, .memory, .wake
	{"ring", runRing},
	{"fan-in", runFanIn},
	{"chan-pp", runChanPP},
	{"chan-spsc", runChanSPSC},
	{"chan-mpmc", runChanMPMC},
	{"seed-alts-1000", func() { runSeedAlts("seed-alts-1000", 1000) }},
	{"seed-alts-10000", func() { runSeedAlts("seed-alts-10000", 10000) }},
}

func find(name string) *workload {
	for i := range workloads {
		if workloads[i].name == name {
			return &workloads[i]
		}
	}
	return nil
}

func main() {
	args := os.Args[1:]
	if os.Getenv(childEnv) != "" {
		if len(args) != 1 || find(args[0]) == nil {
			fail("child: expected exactly one known workload, got %q", args)
		}
		find(args[0]).run()
		return
	}
	if len(args) == 0 {
		for _, w := range workloads {
			args = append(args, w.name)
		}
	}
	for _, a := range args {
		if find(a) == nil {
			fmt.Fprintf(os.Stderr, "parleypeers (go): unknown workload %q; known:", a)
			for _, w := range workloads {
				fmt.Fprintf(os.Stderr, " %s", w.name)
			}
			fmt.Fprintln(os.Stderr)
			os.Exit(2)
		}
	}
	self, err := os.Executable()
	if err != nil {
		fail("cannot find own executable: %v", err)
	}
	for _, a := range args {
		fmt.Fprintf(os.Stderr, "go: %s ...\n", a)
		cmd := exec.Command(self, a)
		cmd.Env = append(os.Environ(), childEnv+"=1")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fail("workload %s failed: %v", a, err)
		}
	}
}

// report prints one result line, rounded to 4 significant digits.
func report(name string, value float64, unit string) {
	fmt.Printf("{\"peer\":\"go\",\"workload\":%q,\"value\":%s,\"unit\":%q}\n",
		name, strconv.FormatFloat(round4(value), 'f', -1, 64), unit)
}

func round4(v float64) float64 {
	if v == 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return v
	}
	d := 4 - int(math.Ceil(math.Log10(math.Abs(v))))
	if d < 0 {
		d = 0
	}
	p := math.Pow(10, float64(d))
	return math.Round(v*p) / p
}

func fail(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "parleypeers (go): FAILED: "+format+"\n", a...)
	os.Exit(1)
}

func check(ok bool, format string, a ...interface{}) {
	if !ok {
		fail(format, a...)
	}
}

func nsPer(d time.Duration, n int) float64   { return float64(d.Nanoseconds()) / float64(n) }
func mPerSec(n int, d time.Duration) float64 { return float64(n) / d.Seconds() / 1e6 }
