/* Minimal bcryptprimitives.dll for Wine 8, which lacks it entirely.
 * Rust's std (>= 1.78) imports bcryptprimitives.dll!ProcessPrng for HashMap
 * seeds and getrandom; Windows 10+ ships it, Wine 8.0 does not.
 * ProcessPrng always succeeds on Windows; here it forwards to RtlGenRandom
 * (advapi32!SystemFunction036), which Wine implements. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
