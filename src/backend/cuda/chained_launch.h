// Chained launches (chained_launch.cuh) as host code sees them: whether they
// are on, and whether they really overlap on this device; and the code the
// device runs for our kernels, which they (and the one-pass cross-entropy)
// need to be sm_90's. A plain C++ header (no CUDA types), for the backend's
// host files and the tests.
#pragma once

namespace hessgpt::cuda {

// Whether launch_chained chains: HESSGPT_CUDA_PDL is not 0 (read at every
// call, for A/B timings) and the loaded kernels come from sm_90 code or later
// (a device that runs the portable PTX of an older target does not get the
// instructions, so its launches stay plain).
bool chained_launches_on();

// The virtual architecture (major * 10 + minor) of the code this device runs
// for the backend's kernels: 90 for sm_90 code, 80 where a newer GPU compiles
// the portable sm_80 PTX; 0 without a device.
int loaded_code_ptx_version();
// The same for the given device, asked afresh (it becomes the current device
// for the query; `info --backends` lists every GPU's).
int loaded_code_ptx_version_on(int device);
// A device's compute capability (major * 10 + minor; device -1: the current
// one); 0 without it. An sm_90 device must load the sm_90 code the build makes
// (CMAKE_CUDA_ARCHITECTURES): where loaded_code_ptx_version() says less,
// chained launches and the one-pass cross-entropy are off there.
int device_compute_capability(int device = -1);

// The seventh GPU session measured decoding with chained launches and without
// them at the same rate, which is also what it would measure if the GPU never
// placed a chained kernel early: this tells the two apart.

// Launches a one-block kernel that allows its dependents and then spins for
// spin_us, and after it on the same stream a chained one-block kernel that
// notes the GPU's clock (%globaltimer) on entry, before it waits. Returns
// the first kernel's end less the second's start in microseconds: about
// spin_us where the second was placed while the first ran, negative where it
// started after the first ended (plain launches, HESSGPT_CUDA_PDL=0). With
// in_graph, the two launches are captured into a CUDA graph and replayed, as
// decoding's recorded step is. Needs a CUDA device; throws Error otherwise.
double chained_launch_overlap_us(bool in_graph, double spin_us = 50.0);

}  // namespace hessgpt::cuda
