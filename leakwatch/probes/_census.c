/* The census's tally in C: every gc-tracked object counted by type, in one call.
 *
 * count_types(get_objects) calls get_objects() (gc.get_objects), counts the list's items by
 * type in a table keyed by the type's address, drops the list and returns {type: count}:
 * no bytecode runs while the list of every object exists (see
 * census.live_objects for why that matters), and no int is made per object. The collector
 * is paused from the call until the list is dropped, so no finalizer runs in between; the
 * dict is built after (each type held meanwhile), so no hashing runs Python code before.
 * Public C API only (Python 3.10 and later).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef struct {
    PyTypeObject **keys;
    Py_ssize_t *counts;
    size_t capacity; /* a power of two */
    size_t used;
} Table;

static size_t slot_of(const Table *t, PyTypeObject *tp) {
    size_t h = ((size_t)tp >> 4) & (t->capacity - 1);
    while (t->keys[h] != NULL && t->keys[h] != tp) {
        h = (h + 1) & (t->capacity - 1);
    }
    return h;
}

static int table_init(Table *t, size_t capacity) {
    t->keys = PyMem_Calloc(capacity, sizeof(*t->keys));
    t->counts = PyMem_Calloc(capacity, sizeof(*t->counts));
    t->capacity = capacity;
    t->used = 0;
    if (t->keys == NULL || t->counts == NULL) {
        PyMem_Free(t->keys);
        PyMem_Free(t->counts);
        t->keys = NULL;
        t->counts = NULL;
        return -1;
    }
    return 0;
}

static void table_free(Table *t) {
    PyMem_Free(t->keys);
    PyMem_Free(t->counts);
    t->keys = NULL;
    t->counts = NULL;
}

/* Keep the table at most half full: move every key to one four times the size. */
static int table_grow(Table *t) {
    Table bigger;
    if (table_init(&bigger, t->capacity * 4) < 0) {
        return -1;
    }
    for (size_t i = 0; i < t->capacity; i++) {
        if (t->keys[i] != NULL) {
            size_t h = slot_of(&bigger, t->keys[i]);
            bigger.keys[h] = t->keys[i];
            bigger.counts[h] = t->counts[i];
            bigger.used++;
        }
    }
    table_free(t);
    *t = bigger;
    return 0;
}

static PyObject *to_dict(const Table *t) {
    PyObject *out = PyDict_New();
    for (size_t i = 0; out != NULL && i < t->capacity; i++) {
        if (t->keys[i] == NULL) {
            continue;
        }
        PyObject *n = PyLong_FromSsize_t(t->counts[i]);
        if (n == NULL || PyDict_SetItem(out, (PyObject *)t->keys[i], n) < 0) {
            Py_XDECREF(n);
            Py_CLEAR(out);
            break;
        }
        Py_DECREF(n);
    }
    return out;
}

static PyObject *count_types(PyObject *module, PyObject *get_objects) {
    (void)module;
    int was_enabled = PyGC_Disable();
    PyObject *objs = PyObject_CallNoArgs(get_objects);
    PyObject *out = NULL;
    Table t = {NULL, NULL, 0, 0};
    if (objs == NULL) {
        goto done;
    }
    if (!PyList_CheckExact(objs)) {
        PyErr_Format(PyExc_TypeError, "get_objects() must return a list, not %.100s", Py_TYPE(objs)->tp_name);
        goto done;
    }
    if (table_init(&t, 1024) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t n = PyList_GET_SIZE(objs);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyTypeObject *tp = Py_TYPE(PyList_GET_ITEM(objs, i));
        size_t h = slot_of(&t, tp);
        if (t.keys[h] == NULL) {
            if (2 * (t.used + 1) > t.capacity) {
                if (table_grow(&t) < 0) {
                    PyErr_NoMemory();
                    goto done;
                }
                h = slot_of(&t, tp);
            }
            t.keys[h] = tp;
            t.used++;
        }
        t.counts[h]++;
    }
    /* The list's objects keep their types alive: hold the types, drop the list, and only then
       build the dict, whose hashing may run Python code (a metaclass's __hash__). */
    for (size_t i = 0; i < t.capacity; i++) {
        if (t.keys[i] != NULL) {
            Py_INCREF(t.keys[i]);
        }
    }
    Py_CLEAR(objs);
    if (was_enabled) {
        PyGC_Enable();
        was_enabled = 0;
    }
    out = to_dict(&t);
    for (size_t i = 0; i < t.capacity; i++) {
        if (t.keys[i] != NULL) {
            Py_DECREF(t.keys[i]);
        }
    }
done:
    table_free(&t);
    Py_XDECREF(objs);
    if (was_enabled) {
        PyGC_Enable();
    }
    return out;
}

static PyMethodDef methods[] = {
    {"count_types", count_types, METH_O,
     "count_types(get_objects) -> {type: count} of the list get_objects() returns, in one C call."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "leakwatch.probes._census", "The census's tally in C.", -1, methods,
};

PyMODINIT_FUNC PyInit__census(void) { return PyModule_Create(&module_def); }
