# The trace span active where a wait is captured (ddtrace's, or OpenTelemetry's), read without
# running tracer or user code, and the one span each event table key keeps: its longest
# captured wait's. Included by _recorder.pyx (one extension module: the Recorder calls these
# directly).


cdef object _c_getter(object klass, str name):
    """The descriptor that reads attribute `name` of klass's instances when it is C-level
    storage (a getset or member descriptor, as ddtrace's native Span has), else None."""
    for base in klass.__mro__:
        found = vars(base).get(name)
        if found is not None:
            return found if type(found) is GetSetDescriptorType or type(found) is MemberDescriptorType else None
    return None


cdef inline EntrySpan* _entry_span(EntrySpan* spans, size_t mask, lp_entry* entry) noexcept:
    """The slot of entry in a span map (mask + 1 slots, never full), or the empty slot where it
    goes."""
    cdef uintptr_t h = <uintptr_t>entry
    cdef size_t i = <size_t>(((h >> 4) ^ (h >> 20)) * 0x9E3779B97F4A7C15ULL >> 20) & mask
    while spans[i].entry != NULL and spans[i].entry != entry:
        i = (i + 1) & mask
    return &spans[i]


cdef inline object _read(object descriptor, object obj):
    """obj's attribute through its C-level descriptor's own getter (no method-wrapper call)."""
    return Py_TYPE(descriptor).tp_descr_get(descriptor, obj, type(obj))


cdef inline void _set_ids(SpanIds* span, object span_id, object trace_id) except *:
    span.trace_id_high = PyLong_AsUnsignedLongLongMask(trace_id >> 64)
    span.trace_id_low = PyLong_AsUnsignedLongLongMask(trace_id)
    span.span_id = PyLong_AsUnsignedLongLongMask(span_id)


cdef _set_span(Captured record, SpanIds* span):
    if span.span_id == 0:
        return
    record.span_id = span.span_id
    record.local_root_span_id = span.local_root_span_id if span.local_root_span_id else None
    trace_id = (<object>span.trace_id_high << 64) | span.trace_id_low
    record.trace_id = trace_id if trace_id else None


cdef bint current_span(Recorder recorder, SpanIds* span) noexcept:
    """Read the trace span active in this thread or task into span (keeping span.wait_ns);
    False when there is none. Only for captured waits: a context variable read from C
    (PyContextVar_Get), then C getters of ddtrace's exact Span type, or the plain dict and
    tuple storage of OpenTelemetry's context and SpanContext: no tracer or user code runs."""
    span.span_id = span.local_root_span_id = span.trace_id_high = span.trace_id_low = 0
    try:
        return _ddtrace_span(recorder, span) or _otel_span(recorder, span)
    except Exception:
        span.span_id = 0
        return False

cdef bint _ddtrace_span(Recorder recorder, SpanIds* span) except -1:
    if not lp_load_int_acquire(&recorder._dd_found):
        with cython.critical_section(recorder):
            if not recorder._dd_found:
                provider = recorder._modules.get("ddtrace._trace.provider")
                span_module = recorder._modules.get("ddtrace._trace.span")
                if provider is None or span_module is None:
                    return False
                var = PyObject_GenericGetDict(provider, NULL).get("_DD_CONTEXTVAR")
                span_type = PyObject_GenericGetDict(span_module, NULL).get("Span")
                if type(var) is not ContextVar or type(span_type) is not type:
                    return False
                getters = [_c_getter(span_type, name) for name in ("span_id", "trace_id", "_local_root")]
                if None in getters:
                    return False
                recorder._dd_span_id, recorder._dd_trace_id, recorder._dd_local_root = getters
                recorder._dd_span_type = span_type
                recorder._dd_span_var = var
                lp_store_int_release(&recorder._dd_found, 1)
    current = get_value(recorder._dd_span_var)
    if type(current) is not recorder._dd_span_type:  # none, or a remote Context without a span
        return False
    span_id = _read(recorder._dd_span_id, current)
    trace_id = _read(recorder._dd_trace_id, current)
    if type(span_id) is not int or type(trace_id) is not int or not span_id:
        return False
    root = _read(recorder._dd_local_root, current)
    if type(root) is recorder._dd_span_type:
        root_id = _read(recorder._dd_span_id, root)
        if type(root_id) is int:
            span.local_root_span_id = PyLong_AsUnsignedLongLongMask(root_id)
    _set_ids(span, span_id, trace_id)
    return True

cdef bint _otel_span(Recorder recorder, SpanIds* span) except -1:
    if not lp_load_int_acquire(&recorder._otel_found):
        with cython.critical_section(recorder):
            if not recorder._otel_found:
                context_module = recorder._modules.get("opentelemetry.context")
                propagation = recorder._modules.get("opentelemetry.trace.propagation")
                span_module = recorder._modules.get("opentelemetry.trace.span")
                if context_module is None or propagation is None or span_module is None:
                    return False
                # OpenTelemetry's default runtime context keeps the context in a context variable.
                runtime = PyObject_GenericGetDict(context_module, NULL).get("_RUNTIME_CONTEXT")
                if runtime is None or type(runtime).__name__ != "ContextVarsRuntimeContext":
                    return False
                var = PyObject_GenericGetDict(runtime, NULL).get("_current_context")
                key = PyObject_GenericGetDict(propagation, NULL).get("_SPAN_KEY")
                span_context_type = PyObject_GenericGetDict(span_module, NULL).get("SpanContext")
                if type(var) is not ContextVar or type(key) is not str or type(span_context_type) is not type:
                    return False
                recorder._otel_span_key = key
                recorder._otel_span_context_type = span_context_type
                recorder._otel_context_var = var
                lp_store_int_release(&recorder._otel_found, 1)
    context = get_value(recorder._otel_context_var)
    if not isinstance(context, dict):
        return False
    current = (<dict>context).get(recorder._otel_span_key)  # the dict's storage, no method of it
    if current is None:
        return False
    attributes = PyObject_GenericGetDict(current, NULL)
    span_context = (<dict>attributes).get("_context") if type(attributes) is dict else None
    if type(span_context) is not recorder._otel_span_context_type:
        return False
    trace_id, span_id = (<tuple>span_context)[0], (<tuple>span_context)[1]
    if type(span_id) is not int or type(trace_id) is not int or not span_id:
        return False
    _set_ids(span, span_id, trace_id)
    return True

cdef void keep_span(Recorder recorder, lp_entry* entry, SpanIds* span) noexcept:
    """Keep span as entry's if its wait is the longest entry had with a span this period:
    one span per key, however many requests wait there (the table's memory stays bounded)."""
    cdef size_t size
    cdef EntrySpan* slot
    if recorder._entry_spans == NULL:
        size = 1
        while size < 2 * recorder._table.max_entries:
            size <<= 1
        recorder._entry_spans = <EntrySpan*>PyMem_RawCalloc(size, sizeof(EntrySpan))
        if recorder._entry_spans == NULL:
            return
        recorder._entry_spans_mask = size - 1
    slot = _entry_span(recorder._entry_spans, recorder._entry_spans_mask, entry)
    if slot.entry == NULL or span.wait_ns > slot.span.wait_ns:
        slot.entry = entry
        slot.span = span[0]
