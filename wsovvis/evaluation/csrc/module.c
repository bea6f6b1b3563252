/* The module wsovvis.evaluation._rle_kernel (see kernel.h). */
#include "kernel.h"

PyObject *counts_key, *size_key;

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS, scan_doc},
    {"intersect", intersect, METH_VARARGS, intersect_doc},
    {"greedy", greedy, METH_VARARGS, greedy_doc},
    {"frames_ok", frames_ok, METH_VARARGS, frames_ok_doc},
    {"release", release, METH_NOARGS, release_doc},
    {"parse_results", parse_results, METH_VARARGS, parse_results_doc},
    {"flat_item", flat_item, METH_VARARGS, flat_item_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_rle_kernel",
                                    "Compressed-RLE scan / intersection and greedy matching for the video mask AP.",
                                    -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__rle_kernel(void) {
    counts_key = PyUnicode_InternFromString("counts");
    size_key = PyUnicode_InternFromString("size");
    if (!counts_key || !size_key) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddIntConstant(m, "ABI", KERNEL_ABI) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
