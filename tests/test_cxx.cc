// The public headers compile as C++ and link from C++ code.
#include <corio.h>

#include <cstdio>

static intptr_t twice(void *arg) { return reinterpret_cast<intptr_t>(arg) * 2; }

static intptr_t cxx_main(void *) {
    corio_task_t *t = nullptr;
    if (corio_spawn(nullptr, &t, twice, reinterpret_cast<void *>(21), nullptr) != 0)
        return -1;
    corio_value_t v{};
    int rc = corio_task_await(t, &v);
    corio_task_release(t);
    return rc == 0 ? corio_value_as_int(v) : rc;
}

int main() {
    intptr_t r = corio_run(cxx_main, nullptr);
    std::printf("corio %s from C++: %ld\n", CORIO_VERSION_STRING, static_cast<long>(r));
    return r == 42 ? 0 : 1;
}
