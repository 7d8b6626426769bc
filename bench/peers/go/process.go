// Process workloads: a goroutine is a process, its mailbox is a channel.
//
// Mailbox sizing: an Erlang mailbox never blocks its sender, so each mailbox
// here is buffered to the most messages that can be waiting in it at once in
// that workload (1 for ping-pong, ring, spawn-idle, genserver-call; 10 for a
// skynet parent with 10 children). Only fan-in has an unbounded backlog (4
// producers outrun one consumer); there the mailbox is buffered 1024, the
// same as the chan-* buffers, and producers block when it is full.
package main

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// skynet: 10 wide, 6 deep, 1,000,000 leaves; every node sums its children.
func skynet(num, size int, parent chan<- int) {
	if size == 1 {
		parent <- num
		return
	}
	mailbox := make(chan int, 10)
	sub := size / 10
	for i := 0; i < 10; i++ {
		go skynet(num+i*sub, sub, mailbox)
	}
	sum := 0
	for i := 0; i < 10; i++ {
		sum += <-mailbox
	}
	parent <- sum
}

func runSkynet() {
	root := make(chan int, 1)
	start := time.Now()
	go skynet(0, 1000000, root)
	sum := <-root
	d := time.Since(start)
	check(sum == 499999500000, "skynet: sum %d, want 499999500000", sum)
	report("skynet", d.Seconds(), "s")
}

// genserver-call: a request carries its reply channel; the server keeps a
// counter as its state and replies with the incremented counter.
type call struct {
	arg   int
	reply chan int
}

func runGenserverCall() {
	const n = 1000000
	server := make(chan call, 1)
	go func() {
		state := 0
		for c := range server {
			state += c.arg
			c.reply <- state
		}
	}()
	// Every call makes a fresh reply channel (buffer 1, so the server never
	// waits for the client), as gen_server:call makes a fresh reference.
	start := time.Now()
	for i := 1; i <= n; i++ {
		reply := make(chan int, 1)
		server <- call{1, reply}
		if r := <-reply; r != i {
			fail("genserver-call: call %d got %d", i, r)
		}
	}
	d := time.Since(start)
	close(server)
	report("genserver-call", nsPer(d, n), "ns/call")
}

// bounce runs n round trips of one integer between this goroutine and a
// partner goroutine over channels a (to partner) and b (back).
func bounce(name string, n int, a, b chan int) {
	go func() {
		for v := range a {
			b <- v + 1
		}
	}()
	v := 0
	start := time.Now()
	for i := 0; i < n; i++ {
		a <- v + 1
		v = <-b
	}
	d := time.Since(start)
	close(a)
	check(v == 2*n, "%s: token %d, want %d", name, v, 2*n)
	report(name, nsPer(d, n), "ns/roundtrip")
}

func runPingPong() { bounce("ping-pong", 1000000, make(chan int, 1), make(chan int, 1)) }

// residentBytes reads the resident set size from /proc/self/statm.
func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	check(err == nil, "read /proc/self/statm: %v", err)
	f := strings.Fields(string(b))
	pages, err := strconv.ParseInt(f[1], 10, 64)
	check(err == nil, "parse statm %q: %v", b, err)
	return pages * int64(os.Getpagesize())
}

// spawn-idle: spawn 1,000,000 goroutines, each blocked on its own mailbox.
// The spawn time runs until every goroutine has started and is about to
// block; memory is RSS growth over the spawn; wake sends every mailbox its
// message and waits until all goroutines have finished.
func runSpawnIdle() {
	const n = 1000000
	mailboxes := make([]chan int, n)
	var started int64
	var done sync.WaitGroup
	var got int64
	done.Add(n)
	before := residentBytes()
	start := time.Now()
	for i := range mailboxes {
		mb := make(chan int, 1)
		mailboxes[i] = mb
		go func() {
			atomic.AddInt64(&started, 1)
			atomic.AddInt64(&got, int64(<-mb))
			done.Done()
		}()
	}
	for atomic.LoadInt64(&started) < n {
		time.Sleep(100 * time.Microsecond)
	}
	spawn := time.Since(start)
	after := residentBytes()
	start = time.Now()
	for _, mb := range mailboxes {
		mb <- 1
	}
	done.Wait()
	wake := time.Since(start)
	check(got == n, "spawn-idle: %d messages received, want %d", got, n)
	report("spawn-idle.spawn", spawn.Seconds(), "s")
	report("spawn-idle.memory", float64(after-before)/n, "B/process")
	report("spawn-idle.wake", wake.Seconds(), "s")
}

// ring: 1000 processes, one token passed 1000 times round.
func runRing() {
	const procs, hops = 1000, 1000000
	ring := make([]chan int, procs)
	for i := range ring {
		ring[i] = make(chan int, 1)
	}
	done := make(chan int)
	for i := range ring {
		go func(in, out chan int) {
			for v := range in {
				if v == hops {
					done <- v
				} else {
					out <- v + 1
				}
			}
		}(ring[i], ring[(i+1)%procs])
	}
	start := time.Now()
	ring[0] <- 0
	v := <-done
	d := time.Since(start)
	check(v == hops, "ring: %d hops, want %d", v, hops)
	for _, c := range ring {
		close(c)
	}
	report("ring", nsPer(d, hops), "ns/hop")
}

// fan-in: 4 producers each send 1,000,000 messages to one consumer.
func runFanIn() {
	const producers, each = 4, 1000000
	mailbox := make(chan int, 1024)
	start := time.Now()
	for p := 0; p < producers; p++ {
		go func() {
			for i := 0; i < each; i++ {
				mailbox <- i
			}
		}()
	}
	sum := 0
	for got := 0; got < producers*each; got++ {
		sum += <-mailbox
	}
	d := time.Since(start)
	check(sum == producers*each*(each-1)/2, "fan-in: sum %d", sum)
	report("fan-in", mPerSec(producers*each, d), "M msg/s")
}
