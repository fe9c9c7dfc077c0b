// Context switch cost of boost.context, the peer of bench_ctxswitch.c:
// the raw fcontext jump (what corio's switch corresponds to) and callcc's
// continuation on top of it. One switch is one direction.
//
//   bench_ctxswitch_boost [round trips]
#include <boost/context/continuation.hpp>
#include <boost/context/detail/fcontext.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace ctx = boost::context;
namespace det = boost::context::detail;

static volatile long counter;

static double now_ns()
{
    return (double)std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

static void fctx_entry(det::transfer_t t)
{
    for (;;) {
        counter++;
        t = det::jump_fcontext(t.fctx, nullptr);
    }
}

static double bench_fcontext(long n)
{
    const std::size_t size = 64 * 1024;
    std::vector<char> stack(size);
    det::fcontext_t f = det::make_fcontext(stack.data() + size, size, fctx_entry);
    det::transfer_t t = det::jump_fcontext(f, nullptr); // warm up
    double t0 = now_ns();
    for (long i = 0; i < n; i++)
        t = det::jump_fcontext(t.fctx, nullptr);
    double t1 = now_ns();
    return (t1 - t0) / (2.0 * (double)n);
}

static double bench_callcc(long n)
{
    ctx::continuation c = ctx::callcc([](ctx::continuation &&sink) {
        for (;;) {
            counter++;
            sink = sink.resume();
        }
        return std::move(sink);
    });
    double t0 = now_ns();
    for (long i = 0; i < n; i++)
        c = c.resume();
    double t1 = now_ns();
    return (t1 - t0) / (2.0 * (double)n);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? std::atol(argv[1]) : 20000000;
    std::printf("ctxswitch_boost_fcontext_ns %.2f ns\n", bench_fcontext(n));
    std::printf("ctxswitch_boost_callcc_ns %.2f ns\n", bench_callcc(n));
    return 0;
}
