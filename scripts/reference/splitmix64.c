/* Sebastiano Vigna's reference SplitMix64 (https://prng.di.unimi.it/splitmix64.c),
   next() copied verbatim; main() prints the first outputs for a few seeds. */
#include <stdint.h>
#include <stdio.h>
static uint64_t x; /* The state can be seeded with any value. */
uint64_t next() {
	uint64_t z = (x += 0x9e3779b97f4a7c15);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
	return z ^ (z >> 31);
}
int main(void) {
	uint64_t seeds[] = {0, 1, 1234567, 0xffffffffffffffffULL};
	for (int s = 0; s < 4; s++) {
		x = seeds[s];
		printf("seed %llu:", (unsigned long long)seeds[s]);
		for (int i = 0; i < 5; i++) printf(" %016llx", (unsigned long long)next());
		printf("\n");
	}
	return 0;
}
