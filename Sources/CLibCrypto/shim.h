#ifndef SIGHTLINE_CLIBCRYPTO_SHIM_H
#define SIGHTLINE_CLIBCRYPTO_SHIM_H
/* OpenSSL's libcrypto, for token secrets: random bytes, SHA-256, constant-time comparison. */
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#endif
