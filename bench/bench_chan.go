// The Go peer of bench_sync's queue ping-pong: two goroutines pass a value
// back and forth through two unbuffered channels. A round trip is two
// handoffs. Prints `name value unit`; GOMAXPROCS as the environment sets it
// (run_sync.sh runs it with 1, like corio's single-threaded loop, and with
// the default).
//
//	go run bench/bench_chan.go [round_trips]
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

func main() {
	n := 1000000
	if len(os.Args) > 1 {
		if v, err := strconv.Atoi(os.Args[1]); err == nil && v > 0 {
			n = v
		}
	}
	a, b := make(chan int), make(chan int)
	go func() {
		for i := 0; i < n; i++ {
			b <- <-a
		}
	}()
	t0 := time.Now()
	for i := 0; i < n; i++ {
		a <- i
		if <-b != i {
			panic("bad value")
		}
	}
	el := time.Since(t0)
	fmt.Printf("go_chan_pingpong_roundtrip_ns_p%d %.1f ns\n", runtime.GOMAXPROCS(0),
		float64(el.Nanoseconds())/float64(n))
}
