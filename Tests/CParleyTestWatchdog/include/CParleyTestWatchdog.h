#pragma once
/// Always 1: referenced from Swift so the linker keeps the constructor's object file.
int parley_test_watchdog_linked(void);
