# bcryptprimitives.dll stand-in for wine 8.0, which lacks the DLL that Go's
# Windows runtime (Go 1.22 and later) loads at start for ProcessPrng.
# ProcessPrng(PBYTE data, SIZE_T len) fills data with random bytes; it is
# answered by advapi32's SystemFunction036 (RtlGenRandom), which wine has.
# Windows x64 calling convention: data in rcx, len in rdx (RtlGenRandom
# takes a ULONG; Go asks for a few dozen bytes at a time), 32 bytes of
# shadow space, stack aligned to 16 at the call.
	.text
	.globl	ProcessPrng
ProcessPrng:
	subq	$40, %rsp
	call	*__imp_SystemFunction036(%rip)
	movzbl	%al, %eax	# BOOLEAN to BOOL
	addq	$40, %rsp
	ret

# DllMain(hinst, reason, reserved): nothing to set up.
	.globl	DllMain
DllMain:
	movl	$1, %eax
	ret
