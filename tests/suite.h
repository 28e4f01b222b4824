/* The main() of every Check executable: run one suite, exit with its result. */
#pragma once

#include <check.h>

int run_suite(Suite *s);
