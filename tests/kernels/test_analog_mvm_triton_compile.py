"""The GPU path, checked without a GPU: every Triton kernel compiles for sm_90 (the analog MVM, the
weight modifier, PCM programming and drift, and the pulsed update).

The interpreter forgives what a GPU compile does not (non-constexpr misuse, ints specialized to
constexpr 1, block shapes tl.dot rejects). A fresh interpreter-free Python compiles the kernels
ahead of time down to cubin with Triton's bundled ptxas, for every constexpr branch.
"""

import os
import subprocess
import sys
import textwrap

import pytest

triton = pytest.importorskip("triton")

SCRIPT = textwrap.dedent('''
    import triton
    from triton.backends.compiler import GPUTarget
    from aimc_lab.kernels.analog_mvm import triton_impl as mvm
    from aimc_lab.kernels.pcm_noise import triton_impl as pcm
    from aimc_lab.kernels.pulsed_update import triton_impl as pu
    from aimc_lab.kernels.weight_modifier import triton_impl as wm

    def build(fn, types, consts):
        sig = {n: ("constexpr" if n in consts else types[n]) for n in fn.arg_names}
        src = triton.compiler.ASTSource(fn=fn, signature=sig, constexprs=consts)
        triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4, "num_stages": 2})

    P = lambda t: "*" + t
    mt = dict(x_ptr=P("fp32"), w_ptr=P("fp32"), scales_ptr=P("fp32"), rows_ptr=P("i64"),
              kexp_ptr=P("i32"), pow2_ptr=P("fp32"), ipow2_ptr=P("fp32"), y_ptr=P("fp32"),
              sat_ptr=P("i8"), factor_ptr=P("fp32"), xt_ptr=P("fp32"), inpass_ptr=P("i8"),
              outpass_ptr=P("i8"))
    mt.update({n: "i32" for n in "R M N K SIZE S NB stride_xm stride_xk stride_wn stride_wk "
               "stride_ym stride_yn seed".split()})
    mt.update({n: "fp32" for n in "nm_thres inp_step inp_bound inp_noise out_step out_bound "
               "w_noise_sq out_noise_sq ir_drop ir_g_ratio out_scale".split()})
    base = dict(NM=0, PERFECT=False, INP_QUANT=True, INP_STO=False, INP_NOISE=False, IR_DROP=False,
                W_NOISE=0, OUT_NOISE=True, OUT_QUANT=True, HAS_SCALES=False, BOUND_TEST=True,
                SAVE=False, PRECISION="ieee", BLOCK_M=64, BLOCK_N=64, BLOCK_K=32)
    for extra in [dict(NM=1, SAVE=True, HAS_SCALES=True, IR_DROP=True, W_NOISE=2),
                  dict(NM=2, INP_STO=True, INP_NOISE=True, W_NOISE=1, PRECISION="tf32",
                       BOUND_TEST=False, BLOCK_M=16, BLOCK_N=128, BLOCK_K=64),
                  dict(PERFECT=True, NM=3, INP_QUANT=False, OUT_NOISE=False, OUT_QUANT=False,
                       BOUND_TEST=False, SAVE=True),
                  dict(seed=1, S=1, R=1, M=1, N=1, K=1, SIZE=1, NB=1, stride_xk=1, INP_NOISE=True)]:
        build(mvm._analog_mvm_fwd_kernel, mt, dict(base, **extra))
    wt = dict(w_ptr=P("fp32"), omega_ptr=P("fp32"), out_ptr=P("fp32"), numel="i32", seed="i32",
              std_dev="fp32", step="fp32", pdrop="fp32", c0="fp32", c1="fp32", c2="fp32")
    for kind in (2, 3, 4):  # randn, rounding, rand branches
        build(wm._weight_modifier_fwd_kernel, wt, dict(KIND=kind, BLOCK=1024, seed=1))
    pt = dict(g_ptr=P("fp32"), gprog_ptr=P("fp32"), nu_ptr=P("fp32"), numel="i32", seed="i32",
              g_max="fp32", sigma_scale="fp32", c0="fp32", c1="fp32", c2="fp32",
              prog_scale="fp32", drift_scale="fp32")
    pt.update({n: "fp32" for n in "g_floor mu_slope mu_icpt mu_lo mu_hi sig_slope sig_icpt sig_lo sig_hi".split()})
    build(pcm._pcm_program_fwd_kernel, pt, dict(BLOCK=1024, seed=1))
    at = dict(gp_ptr=P("fp32"), nu_ptr=P("fp32"), out_ptr=P("fp32"), numel="i32", seed="i32",
              log_ratio="fp32", g_max="fp32", time_term="fp32", read_scale="fp32", q_scale="fp32",
              q_exponent="fp32", q_floor="fp32", q_cap="fp32")
    build(pcm._pcm_at_time_fwd_kernel, at, dict(BLOCK=1024, seed=1))
    ut = {n: P("fp32") for n in "w_ptr out_ptr dw_up_ptr dw_down_ptr b_max_ptr b_min_ptr g_up_ptr g_down_ptr "
          "p_ptr q_ptr sx_ptr sd_ptr".split()}
    ut.update(bl_ptr=P("i32"), sigma="fp32", **{n: "i32" for n in "M N K BL_MAX seed_x seed_d seed_n".split()})
    for extra in [dict(MULT_NOISE=True), dict(MULT_NOISE=False),
                  dict(MULT_NOISE=True, M=1, N=1, K=1, BL_MAX=1, seed_x=1)]:  # ints of 1 become constexprs
        build(pu._pulsed_update_fwd_kernel, ut, dict(dict(BLOCK_N=16, BLOCK_K=16), **extra))
    print("compiled")
''')


def test_kernels_compile_for_sm90(tmp_path):
    try:
        from triton.backends import backends
    except ImportError:  # pragma: no cover - older layouts
        pytest.skip("this Triton has no backend registry")
    if "nvidia" not in backends:
        pytest.skip("Triton's NVIDIA backend is not installed")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path)
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and "compiled" in proc.stdout, proc.stderr[-4000:]
