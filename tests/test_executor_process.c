#include "corio.h"
#include "harness.h"
static void test_placeholder(void) {}
TEST_MAIN(CASE(test_placeholder))
