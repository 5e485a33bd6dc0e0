/* Minimal start-up for QEMU's mps2-an385 (Cortex-M3): a vector table whose reset handler is
 * newlib's semihosting crt0 (_start from --specs=rdimon.specs), which zeroes .bss, sets up
 * the heap and calls main(); exit() ends the QEMU run through semihosting.
 * Not part of the model library: a board file for the emulated test image only. */
#include <stdint.h>

typedef void (*hwbin_handler_t)(void);

extern void _start(void);
extern uint32_t __stack;

static void hwbin_fault_handler(void)
{
    for (;;) {
    }
}

__attribute__((section(".vectors"), used)) static const hwbin_handler_t hwbin_vectors[16] = {
    (hwbin_handler_t)(uintptr_t)&__stack, /* initial stack pointer */
    _start,                               /* reset */
    hwbin_fault_handler,                  /* NMI */
    hwbin_fault_handler,                  /* hard fault */
    hwbin_fault_handler,                  /* memory management */
    hwbin_fault_handler,                  /* bus fault */
    hwbin_fault_handler,                  /* usage fault */
    0, 0, 0, 0,
    hwbin_fault_handler, /* SVCall */
    hwbin_fault_handler, /* debug monitor */
    0,
    hwbin_fault_handler, /* PendSV */
    hwbin_fault_handler  /* SysTick */
};
