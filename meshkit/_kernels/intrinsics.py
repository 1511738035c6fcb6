"""Low-level helpers for the numba kernels that numba itself does not offer."""

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def prefetch(typingctx, arr, i, j):
    """Hint the CPU to fetch the cache line holding arr[i, j] (a 2-D array; indices in range or
    not: a prefetch never faults and changes no result). Compiles to the target's prefetch
    instruction (llvm.prefetch: read, high temporal locality, data cache)."""
    sig = types.void(arr, i, j)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        idx = [context.cast(builder, v, t, types.intp) for v, t in zip(args[1:], signature.args[1:], strict=True)]
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, idx)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                            "llvm.prefetch.p0i8")
        builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True)
def live(*arrays):
    """Use its arguments, and nothing else: called last in a helper of the collapse loop, so that all the
    helper's arrays live to its one exit. Numba increfs a function's array arguments on entry and decrefs
    each after its last use; its reference-count pruning removes those pairs only when the decrefs all
    sit at the exit. Otherwise every call pays two atomic updates per array: in the collapse loop (~9
    heap updates and one collapse check per collapse) that was a third of its time. Check with
    ``qem_decimate.inspect_llvm(sig)``: no ``@NRT_incref`` inside ``_hset``, ``_can_collapse``, ``_best``
    (``tests/test_decimate.py`` does).
    """
    return None
