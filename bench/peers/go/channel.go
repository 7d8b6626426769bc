// Channel workloads: plain Go channels, and reflect.Select for the seed's
// dynamic select (alts!! in core.async).
package main

import (
	"reflect"
	"sync"
	"time"
)

// chan-pp: ping-pong over two unbuffered channels.
func runChanPP() { bounce("chan-pp", 1000000, make(chan int), make(chan int)) }

// chan-spsc: one producer, one consumer, buffer 1024, 10,000,000 items.
func runChanSPSC() {
	const n = 10000000
	c := make(chan int, 1024)
	start := time.Now()
	go func() {
		for i := 0; i < n; i++ {
			c <- i
		}
		close(c)
	}()
	sum, count := 0, 0
	for v := range c {
		sum += v
		count++
	}
	d := time.Since(start)
	check(count == n && sum == n*(n-1)/2, "chan-spsc: %d items, sum %d", count, sum)
	report("chan-spsc", mPerSec(n, d), "M items/s")
}

// chan-mpmc: 4 producers, 4 consumers, one channel buffered 1024, 4,000,000
// items in all; closed once every producer is done.
func runChanMPMC() {
	const producers, consumers, each = 4, 4, 1000000
	c := make(chan int, 1024)
	counts := make(chan [2]int, consumers)
	var wg sync.WaitGroup
	wg.Add(producers)
	start := time.Now()
	for p := 0; p < producers; p++ {
		go func() {
			for i := 0; i < each; i++ {
				c <- i
			}
			wg.Done()
		}()
	}
	for k := 0; k < consumers; k++ {
		go func() {
			count, sum := 0, 0
			for v := range c {
				count++
				sum += v
			}
			counts <- [2]int{count, sum}
		}()
	}
	wg.Wait()
	close(c)
	count, sum := 0, 0
	for k := 0; k < consumers; k++ {
		r := <-counts
		count, sum = count+r[0], sum+r[1]
	}
	d := time.Since(start)
	check(count == producers*each && sum == producers*each*(each-1)/2,
		"chan-mpmc: %d items, sum %d", count, sum)
	report("chan-mpmc", mPerSec(producers*each, d), "M items/s")
}

// seed-alts-N: the seed's core.async example. N unbuffered channels, one
// goroutine per channel puts "hi" on it, and the reader selects over all N
// channels (every time, as alts!! over the whole list does) until it has
// read N values.
func runSeedAlts(name string, n int) {
	start := time.Now()
	cases := make([]reflect.SelectCase, n)
	for i := range cases {
		c := make(chan string)
		cases[i] = reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(c)}
		go func() { c <- "hi" }()
	}
	seen := make([]bool, n)
	for i := 0; i < n; i++ {
		chosen, v, ok := reflect.Select(cases)
		check(ok && v.String() == "hi" && !seen[chosen],
			"%s: read %v (ok %v) from channel %d (seen %v)", name, v, ok, chosen, seen[chosen])
		seen[chosen] = true
	}
	d := time.Since(start)
	report(name, float64(d.Nanoseconds())/1e6, "ms")
}
