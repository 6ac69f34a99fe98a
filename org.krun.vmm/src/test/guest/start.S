/*
 * Entry and trap stubs of the fast guest programs. krun enters _start in 64-bit mode at CPL0 with
 * interrupts disabled and the first GiB identity-mapped; the program's main() returns the status that
 * guest_exit() reports on the exit-status port before it resets the VM.
 */
    .section .text.entry, "ax"
    .globl _start
_start:
    cli
    lea     stack_top(%rip), %rsp
    xor     %ebp, %ebp
    call    main
    mov     %eax, %edi
    call    guest_exit

/*
 * One 16-byte stub per vector, all of them: a vector the program did not expect (an exception, or an
 * interrupt nobody asked for) ends the VM with a status that names it, via guest_trap(vector, frame).
 */
    .text
    .balign 16
    .globl trap_stubs
trap_stubs:
    .set vector, 0
    .rept 256
    .balign 16
    pushq   $vector
    jmp     trap_common
    .set vector, vector + 1
    .endr

trap_common:
    mov     (%rsp), %rdi
    lea     8(%rsp), %rsi
    and     $-16, %rsp
    call    guest_trap
1:  cli
    hlt
    jmp     1b

    .bss
    .balign 16
    .space  16384
stack_top:

    .section .note.GNU-stack, "", @progbits
