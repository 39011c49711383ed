// Package bundle reads, writes, digests and signs model bundles: .tar.gz
// archives holding manifest.json, the model's WebAssembly module, optional
// transform modules and an optional signature.ed25519. docs/bundle.md is
// the format's specification for anyone who builds bundles without mlnode.
//
// Open unpacks an archive in memory within Limits and checks it; Digest
// names a bundle by the sha256 of its canonical manifest (RFC 8785) with
// every module's digest filled in; Sign and Verify make and check ed25519
// signatures of that digest; Build and WithSignature write archives
// deterministically.
//
// # Caveats
//
//   - Open holds the whole bundle in memory: at most Limits.MaxUncompressed
//     bytes of it, and never a buffer larger than one entry's declared size.
//   - Open checks a signature's form, not its validity: whether a signature
//     verifies, and whether its key is trusted, is for the caller (Verify).
//     Trust compares whole public keys; KeyID is only a label.
//   - The archive bytes Build writes depend on Go's deflate as well as the
//     content: another Go version may compress differently. The digest
//     never depends on the archive, only on the manifest and the modules.
//   - The digest hashes the manifest as written (plus module digests):
//     leaving out an optional field and writing its default are two
//     different versions.
//   - A bundle holds nothing the digest does not cover: any file other than
//     the manifest, the signature and the modules the manifest names is
//     refused, so a signed bundle cannot carry unsigned content.
package bundle
