// logreg_c: the 32-feature logistic regression of examples/models/logreg_go
// as an mlnode/v1 model module (docs/abi.md) written in C with no libc.
// Built by examples/build.sh:
//
//   clang --target=wasm32 -nostdlib -O2 -Wl,--no-entry \
//     -Wl,--export=mlnode_alloc -Wl,--export=mlnode_predict \
//     -Wl,--export=mlnode_predict_batch -o model.wasm model.c
//
// The module imports nothing. Error codes are those of the Go examples
// (examples/internal/guest): 1 n_in, 2 n_out, 3 buffer, 4 n_rows.
// The weights must stay equal to logreg.Weights: examples_test compares them.

#define N_IN 32
#define N_OUT 1

enum {
	OK = 0,
	ERR_INPUT_COUNT = 1,
	ERR_OUTPUT_COUNT = 2,
	ERR_BUFFER = 3,
	ERR_ROW_COUNT = 4,
};

typedef unsigned long uptr; // 32 bits on wasm32
typedef unsigned long long u64;

static const double weights[N_IN] = {
	-0.282, -0.559, 0.241, -0.684, 0.057, -0.215, -0.707, 0.012,
	-0.74, -0.106, -0.688, -0.655, -0.121, 0.523, -0.602, -0.443,
	0.204, 0.716, 0.123, -0.165, 0.762, -0.725, 0.574, -0.337,
	-0.569, -0.612, -0.306, 0.506, -0.511, 0.131, 0.222, -0.204,
};
static const double bias = 0.125;

// ---- allocation: a bump allocator over the heap, never freeing --------------

extern unsigned char __heap_base; // set by wasm-ld: the end of data and stack

static uptr heap_top; // next free byte; 0 until the first mlnode_alloc

__attribute__((visibility("default"))) int mlnode_alloc(int size) {
	if (size < 0) {
		return 0;
	}
	if (heap_top == 0) {
		heap_top = ((uptr)&__heap_base + 7) & ~(uptr)7;
	}
	uptr n = ((uptr)size + 7) & ~(uptr)7;
	if (n == 0) {
		n = 8; // a distinct address even for 0 bytes
	}
	uptr p = heap_top;
	if (n > ~(uptr)0 - p) {
		return 0;
	}
	uptr end = p + n;
	uptr have = (uptr)__builtin_wasm_memory_size(0) * 65536;
	if (end > have) {
		uptr pages = (end - have + 65535) / 65536;
		if (__builtin_wasm_memory_grow(0, pages) == (uptr)-1) {
			return 0; // past the memory limit
		}
	}
	heap_top = end;
	return (int)p;
}

// in_heap reports whether n_words float64 at p lie inside allocated memory,
// 8-byte aligned: the host may only write where mlnode_alloc said it could.
static int in_heap(uptr p, u64 n_words) {
	uptr lo = ((uptr)&__heap_base + 7) & ~(uptr)7;
	return heap_top != 0 && (p & 7) == 0 && p >= lo && p <= heap_top &&
	       n_words * 8 <= (u64)(heap_top - p);
}

// ---- exp: a port of Go's math.exp (FreeBSD e_exp.c), so that the C and Go
// modules agree to the last bit on wasm, which has no fused multiply-add ----

static double from_bits(u64 b) {
	double d;
	__builtin_memcpy(&d, &b, sizeof d);
	return d;
}

static u64 to_bits(double d) {
	u64 b;
	__builtin_memcpy(&b, &d, sizeof b);
	return b;
}

// ldexp_ returns frac × 2^e, as Go's math.ldexp.
static double ldexp_(double frac, int e) {
	if (frac == 0 || frac != frac || __builtin_fabs(frac) == __builtin_inf()) {
		return frac;
	}
	if (__builtin_fabs(frac) < 2.2250738585072014e-308) { // normalize a denormal
		frac *= (double)(1ULL << 52);
		e -= 52;
	}
	u64 x = to_bits(frac);
	e += (int)((x >> 52) & 0x7ff) - 1023;
	if (e < -1075) {
		return frac < 0 ? -0.0 : 0.0;
	}
	if (e > 1023) {
		return frac < 0 ? -__builtin_inf() : __builtin_inf();
	}
	double m = 1;
	if (e < -1022) { // denormal result
		e += 53;
		m = 1.0 / (double)(1ULL << 53);
	}
	x &= ~(0x7ffULL << 52);
	x |= (u64)(e + 1023) << 52;
	return m * from_bits(x);
}

static double exp_(double x) {
	const double ln2_hi = 6.93147180369123816490e-01;
	const double ln2_lo = 1.90821492927058770002e-10;
	const double log2e = 1.44269504088896338700e+00;
	const double overflow = 7.09782712893383973096e+02;
	const double underflow = -7.45133219101941108420e+02;
	const double near_zero = 1.0 / (1 << 28);
	const double p1 = 1.66666666666666657415e-01;
	const double p2 = -2.77777777770155933842e-03;
	const double p3 = 6.61375632143793436117e-05;
	const double p4 = -1.65339022054652515390e-06;
	const double p5 = 4.13813679705723846039e-08;

	if (x != x) {
		return x;
	}
	if (x > overflow) {
		return __builtin_inf();
	}
	if (x < underflow) {
		return 0;
	}
	if (-near_zero < x && x < near_zero) {
		return 1 + x;
	}
	int k = 0;
	if (x < 0) {
		k = (int)(log2e * x - 0.5);
	} else if (x > 0) {
		k = (int)(log2e * x + 0.5);
	}
	double hi = x - (double)k * ln2_hi;
	double lo = (double)k * ln2_lo;
	double r = hi - lo;
	double t = r * r;
	double c = r - t * (p1 + t * (p2 + t * (p3 + t * (p4 + t * p5))));
	double y = 1 - ((lo - (r * c) / (2 - c)) - hi);
	return ldexp_(y, k);
}

// ---- the model -------------------------------------------------------------

static double predict_row(const double *x) {
	double z = bias;
	for (int i = 0; i < N_IN; i++) {
		z += weights[i] * x[i];
	}
	return 1 / (1 + exp_(-z));
}

__attribute__((visibility("default"))) int mlnode_predict_batch(int in_ptr, int n_rows, int n_in, int out_ptr,
                                                                int n_out) {
	if (n_in != N_IN) {
		return ERR_INPUT_COUNT;
	}
	if (n_out != N_OUT) {
		return ERR_OUTPUT_COUNT;
	}
	if (n_rows < 0) {
		return ERR_ROW_COUNT;
	}
	if (!in_heap((uptr)in_ptr, (u64)n_rows * N_IN) || !in_heap((uptr)out_ptr, (u64)n_rows * N_OUT)) {
		return ERR_BUFFER;
	}
	const double *in = (const double *)(uptr)in_ptr;
	double *out = (double *)(uptr)out_ptr;
	for (int r = 0; r < n_rows; r++) {
		out[r] = predict_row(in + (uptr)r * N_IN);
	}
	return OK;
}

__attribute__((visibility("default"))) int mlnode_predict(int in_ptr, int n_in, int out_ptr, int n_out) {
	return mlnode_predict_batch(in_ptr, 1, n_in, out_ptr, n_out);
}
