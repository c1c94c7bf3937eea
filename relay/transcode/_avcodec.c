/* relay.transcode._avcodec: libavcodec + libswresample called directly, bytes in, bytes out
 * (issue 19; measured in docs/PERFORMANCE.md "Issue 19: transcoding").
 *
 * Why hand-written when PyAV exists: PyAV's per-call wrapper, not FFmpeg, is most of a codec
 * call's cost on the transcoding hot path. A 20-ms G.722 encode through PyAV costs 25 us of
 * which FFmpeg's work is ~12 us; a G.722 decode 9.6 us of which 7 us; an 8 <-> 16 kHz
 * swresample pass 5.5 us of which ~1 us. Each PyAV call builds frame and packet objects,
 * Fractions and filter graphs; here a call is one copy in, the FFmpeg calls, one bytes out.
 *
 * relay.transcode.audio uses these types when this module was built (setup.py builds it only
 * when pkg-config finds Debian's FFmpeg headers) and RTPVAULT_PURE is not set; PyAV stays the
 * path otherwise. Every FFmpeg return code is checked: a failure raises ValueError (audio.py
 * turns it into AudioError), never a crash. PCM is signed 16-bit little-endian mono.
 *
 *   Decoder(name, rate, out_rate).decode(payload) -> (pcm at out_rate, samples at rate)
 *   Encoder(name, rate, frame).encode(pcm of exactly `frame` samples) -> payload
 *   Resampler(in_rate, out_rate).convert(pcm) -> pcm at out_rate
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <libavcodec/avcodec.h>
#include <libavutil/channel_layout.h>
#include <libavutil/error.h>
#include <libavutil/frame.h>
#include <libavutil/log.h>
#include <libavutil/opt.h>
#include <libavutil/samplefmt.h>
#include <libswresample/swresample.h>

#define MAX_RATE 384000
#define MAX_PAYLOAD (1 << 16) /* an RTP payload never exceeds a UDP datagram */
#define MAX_FRAME (1 << 16)

static PyObject *
ff_error(const char *what, int err)
{
    char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
    av_strerror(err, buf, sizeof buf);
    PyErr_Format(PyExc_ValueError, "%s: %s", what, buf);
    return NULL;
}

/* ---- s16 mono output buffer ------------------------------------------------------------- */

typedef struct {
    uint8_t *data;
    size_t len, cap;
} Buf;

static int
buf_reserve(Buf *b, size_t more)
{
    if (b->len + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + more)
        cap *= 2;
    uint8_t *p = PyMem_Realloc(b->data, cap);
    if (!p) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

/* ---- one swresample context: (format, layout, rate) -> s16 mono at out_rate --------------- */

typedef struct {
    SwrContext *swr;
    int in_fmt, in_rate, in_channels, out_rate;
} Swr;

static void
swr_release(Swr *s)
{
    swr_free(&s->swr);
    s->in_fmt = -1;
}

static int
swr_setup(Swr *s, AVChannelLayout *in_layout, int in_fmt, int in_rate, int out_rate)
{
    if (s->swr && s->in_fmt == in_fmt && s->in_rate == in_rate
        && s->in_channels == in_layout->nb_channels && s->out_rate == out_rate)
        return 0;
    swr_release(s);
    AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
    int err = swr_alloc_set_opts2(&s->swr, &mono, AV_SAMPLE_FMT_S16, out_rate, in_layout,
                                  in_fmt, in_rate, 0, NULL);
    if (err < 0) {
        ff_error("swr_alloc_set_opts2", err);
        return -1;
    }
    if ((err = swr_init(s->swr)) < 0) {
        swr_release(s);
        ff_error("swr_init", err);
        return -1;
    }
    s->in_fmt = in_fmt;
    s->in_rate = in_rate;
    s->in_channels = in_layout->nb_channels;
    s->out_rate = out_rate;
    return 0;
}

/* Converts `samples` input samples and appends what swresample gives out to `out`. */
static int
swr_append(Swr *s, const uint8_t **in, int samples, Buf *out)
{
    int room = swr_get_out_samples(s->swr, samples);
    if (room < 0) {
        ff_error("swr_get_out_samples", room);
        return -1;
    }
    if (buf_reserve(out, (size_t)room * 2 + 2) < 0)
        return -1;
    uint8_t *dst = out->data + out->len;
    int got = swr_convert(s->swr, &dst, room, in, samples);
    if (got < 0) {
        ff_error("swr_convert", got);
        return -1;
    }
    out->len += (size_t)got * 2;
    return 0;
}

static int
check_rate(int rate, const char *what)
{
    if (rate <= 0 || rate > MAX_RATE) {
        PyErr_Format(PyExc_ValueError, "%s %d out of range", what, rate);
        return -1;
    }
    return 0;
}

/* ---- Decoder ------------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    AVCodecContext *ctx;
    AVPacket *pkt;
    AVFrame *frame;
    uint8_t *padded; /* payload copy with FFmpeg's input padding */
    Swr swr;
    int out_rate;
} Decoder;

static void
Decoder_dealloc(Decoder *self)
{
    avcodec_free_context(&self->ctx);
    av_packet_free(&self->pkt);
    av_frame_free(&self->frame);
    av_free(self->padded);
    swr_release(&self->swr);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
Decoder_init(Decoder *self, PyObject *args, PyObject *kw)
{
    static char *names[] = {"name", "rate", "out_rate", NULL};
    const char *name;
    int rate, out_rate, err;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "sii", names, &name, &rate, &out_rate))
        return -1;
    if (self->ctx) {
        PyErr_SetString(PyExc_ValueError, "Decoder already initialised");
        return -1;
    }
    if (check_rate(rate, "rate") < 0 || check_rate(out_rate, "out_rate") < 0)
        return -1;
    self->swr.in_fmt = -1;
    const AVCodec *codec = avcodec_find_decoder_by_name(name);
    if (!codec) {
        PyErr_Format(PyExc_ValueError, "no FFmpeg decoder %s", name);
        return -1;
    }
    self->ctx = avcodec_alloc_context3(codec);
    self->pkt = av_packet_alloc();
    self->frame = av_frame_alloc();
    self->padded = av_mallocz(MAX_PAYLOAD + AV_INPUT_BUFFER_PADDING_SIZE);
    if (!self->ctx || !self->pkt || !self->frame || !self->padded) {
        PyErr_NoMemory();
        return -1;
    }
    self->ctx->sample_rate = rate;
    AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
    if ((err = av_channel_layout_copy(&self->ctx->ch_layout, &mono)) < 0) {
        ff_error("av_channel_layout_copy", err);
        return -1;
    }
    if ((err = avcodec_open2(self->ctx, codec, NULL)) < 0) {
        ff_error(name, err);
        return -1;
    }
    self->out_rate = out_rate;
    return 0;
}

static PyObject *
Decoder_decode(Decoder *self, PyObject *arg)
{
    Py_buffer in;
    if (!self->ctx) {
        PyErr_SetString(PyExc_ValueError, "Decoder not initialised");
        return NULL;
    }
    if (PyObject_GetBuffer(arg, &in, PyBUF_SIMPLE) < 0)
        return NULL;
    if (in.len <= 0 || in.len > MAX_PAYLOAD) {
        PyBuffer_Release(&in);
        PyErr_Format(PyExc_ValueError, "payload of %zd bytes", in.len);
        return NULL;
    }
    memcpy(self->padded, in.buf, (size_t)in.len);
    memset(self->padded + in.len, 0, AV_INPUT_BUFFER_PADDING_SIZE);
    self->pkt->data = self->padded;
    self->pkt->size = (int)in.len;
    PyBuffer_Release(&in);

    int err = avcodec_send_packet(self->ctx, self->pkt);
    self->pkt->data = NULL;
    self->pkt->size = 0;
    if (err < 0)
        return ff_error(self->ctx->codec->name, err);

    Buf out = {0};
    long long native = 0;
    for (;;) {
        err = avcodec_receive_frame(self->ctx, self->frame);
        if (err == AVERROR(EAGAIN) || err == AVERROR_EOF)
            break;
        if (err < 0) {
            ff_error(self->ctx->codec->name, err);
            goto fail;
        }
        AVFrame *f = self->frame;
        if (f->nb_samples < 0 || f->nb_samples > MAX_FRAME || f->ch_layout.nb_channels < 1) {
            PyErr_Format(PyExc_ValueError, "%s gave a frame of %d samples, %d channels",
                         self->ctx->codec->name, f->nb_samples, f->ch_layout.nb_channels);
            av_frame_unref(f);
            goto fail;
        }
        native += f->nb_samples;
        if (f->format == AV_SAMPLE_FMT_S16 && f->sample_rate == self->out_rate
            && f->ch_layout.nb_channels == 1) {
            size_t n = (size_t)f->nb_samples * 2; /* as is: no swresample round */
            if (buf_reserve(&out, n) < 0) {
                av_frame_unref(f);
                goto fail;
            }
            memcpy(out.data + out.len, f->data[0], n);
            out.len += n;
        } else if (check_rate(f->sample_rate, "frame rate") < 0
                   || swr_setup(&self->swr, &f->ch_layout, f->format, f->sample_rate,
                                self->out_rate) < 0
                   || swr_append(&self->swr, (const uint8_t **)f->extended_data, f->nb_samples,
                                 &out) < 0) {
            av_frame_unref(f);
            goto fail;
        }
        av_frame_unref(f);
    }
    PyObject *pcm = PyBytes_FromStringAndSize((const char *)out.data, (Py_ssize_t)out.len);
    PyMem_Free(out.data);
    if (!pcm)
        return NULL;
    return Py_BuildValue("(NL)", pcm, native);
fail:
    PyMem_Free(out.data);
    return NULL;
}

static PyMethodDef Decoder_methods[] = {
    {"decode", (PyCFunction)Decoder_decode, METH_O,
     "payload -> (mono s16 PCM at out_rate, samples at the codec's rate)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject DecoderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "relay.transcode._avcodec.Decoder",
    .tp_basicsize = sizeof(Decoder),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Decoder(name, rate, out_rate): an FFmpeg decoder plus swresample to out_rate",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Decoder_init,
    .tp_dealloc = (destructor)Decoder_dealloc,
    .tp_methods = Decoder_methods,
};

/* ---- Encoder ------------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    AVCodecContext *ctx;
    AVPacket *pkt;
    AVFrame *frame;
    int samples;
    int64_t pts;
} Encoder;

static void
Encoder_dealloc(Encoder *self)
{
    avcodec_free_context(&self->ctx);
    av_packet_free(&self->pkt);
    av_frame_free(&self->frame);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
Encoder_init(Encoder *self, PyObject *args, PyObject *kw)
{
    static char *names[] = {"name", "rate", "frame", NULL};
    const char *name;
    int rate, samples, err;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "sii", names, &name, &rate, &samples))
        return -1;
    if (self->ctx) {
        PyErr_SetString(PyExc_ValueError, "Encoder already initialised");
        return -1;
    }
    if (check_rate(rate, "rate") < 0)
        return -1;
    if (samples <= 0 || samples > MAX_FRAME) {
        PyErr_Format(PyExc_ValueError, "frame of %d samples", samples);
        return -1;
    }
    const AVCodec *codec = avcodec_find_encoder_by_name(name);
    if (!codec) {
        PyErr_Format(PyExc_ValueError, "no FFmpeg encoder %s", name);
        return -1;
    }
    self->ctx = avcodec_alloc_context3(codec);
    self->pkt = av_packet_alloc();
    self->frame = av_frame_alloc();
    if (!self->ctx || !self->pkt || !self->frame) {
        PyErr_NoMemory();
        return -1;
    }
    AVCodecContext *c = self->ctx;
    AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
    c->sample_rate = rate;
    c->sample_fmt = AV_SAMPLE_FMT_S16;
    c->frame_size = samples; /* G.722: one packet a frame (PyAV's frame_size option) */
    c->time_base = (AVRational){1, rate};
    if ((err = av_channel_layout_copy(&c->ch_layout, &mono)) < 0) {
        ff_error("av_channel_layout_copy", err);
        return -1;
    }
    if ((err = avcodec_open2(c, codec, NULL)) < 0) {
        ff_error(name, err);
        return -1;
    }
    if (c->frame_size && c->frame_size != samples) {
        PyErr_Format(PyExc_ValueError, "%s wants frames of %d samples, not %d", name,
                     c->frame_size, samples);
        return -1;
    }
    AVFrame *f = self->frame;
    f->format = AV_SAMPLE_FMT_S16;
    f->sample_rate = rate;
    f->nb_samples = samples;
    if ((err = av_channel_layout_copy(&f->ch_layout, &mono)) < 0
        || (err = av_frame_get_buffer(f, 0)) < 0) {
        ff_error("av_frame_get_buffer", err);
        return -1;
    }
    self->samples = samples;
    return 0;
}

static PyObject *
Encoder_encode(Encoder *self, PyObject *arg)
{
    Py_buffer in;
    if (!self->ctx) {
        PyErr_SetString(PyExc_ValueError, "Encoder not initialised");
        return NULL;
    }
    if (PyObject_GetBuffer(arg, &in, PyBUF_SIMPLE) < 0)
        return NULL;
    if (in.len != (Py_ssize_t)self->samples * 2) {
        PyErr_Format(PyExc_ValueError, "%zd bytes of PCM, the frame is %d", in.len,
                     self->samples * 2);
        PyBuffer_Release(&in);
        return NULL;
    }
    int err = av_frame_make_writable(self->frame); /* the encoder may still hold it */
    if (err < 0) {
        PyBuffer_Release(&in);
        return ff_error("av_frame_make_writable", err);
    }
    memcpy(self->frame->data[0], in.buf, (size_t)in.len);
    PyBuffer_Release(&in);
    self->frame->pts = self->pts;
    self->pts += self->samples;
    if ((err = avcodec_send_frame(self->ctx, self->frame)) < 0)
        return ff_error(self->ctx->codec->name, err);
    Buf out = {0};
    for (;;) {
        err = avcodec_receive_packet(self->ctx, self->pkt);
        if (err == AVERROR(EAGAIN) || err == AVERROR_EOF)
            break;
        if (err < 0) {
            ff_error(self->ctx->codec->name, err);
            PyMem_Free(out.data);
            return NULL;
        }
        if (self->pkt->size < 0 || buf_reserve(&out, (size_t)self->pkt->size) < 0) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "encoder gave a negative packet size");
            av_packet_unref(self->pkt);
            PyMem_Free(out.data);
            return NULL;
        }
        memcpy(out.data + out.len, self->pkt->data, (size_t)self->pkt->size);
        out.len += (size_t)self->pkt->size;
        av_packet_unref(self->pkt);
    }
    PyObject *payload = PyBytes_FromStringAndSize((const char *)out.data, (Py_ssize_t)out.len);
    PyMem_Free(out.data);
    return payload;
}

static PyMethodDef Encoder_methods[] = {
    {"encode", (PyCFunction)Encoder_encode, METH_O,
     "mono s16 PCM of exactly `frame` samples -> the encoded payload"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EncoderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "relay.transcode._avcodec.Encoder",
    .tp_basicsize = sizeof(Encoder),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Encoder(name, rate, frame): an FFmpeg encoder for mono s16 frames",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Encoder_init,
    .tp_dealloc = (destructor)Encoder_dealloc,
    .tp_methods = Encoder_methods,
};

/* ---- Resampler ---------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    Swr swr;
} Resampler;

static void
Resampler_dealloc(Resampler *self)
{
    swr_release(&self->swr);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
Resampler_init(Resampler *self, PyObject *args, PyObject *kw)
{
    static char *names[] = {"in_rate", "out_rate", NULL};
    int in_rate, out_rate;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "ii", names, &in_rate, &out_rate))
        return -1;
    if (check_rate(in_rate, "in_rate") < 0 || check_rate(out_rate, "out_rate") < 0)
        return -1;
    AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
    self->swr.in_fmt = -1;
    return swr_setup(&self->swr, &mono, AV_SAMPLE_FMT_S16, in_rate, out_rate);
}

static PyObject *
Resampler_convert(Resampler *self, PyObject *arg)
{
    Py_buffer in;
    if (!self->swr.swr) {
        PyErr_SetString(PyExc_ValueError, "Resampler not initialised");
        return NULL;
    }
    if (PyObject_GetBuffer(arg, &in, PyBUF_SIMPLE) < 0)
        return NULL;
    if (in.len % 2 || in.len / 2 > MAX_FRAME) {
        PyErr_Format(PyExc_ValueError, "%zd bytes of s16 PCM", in.len);
        PyBuffer_Release(&in);
        return NULL;
    }
    Buf out = {0};
    const uint8_t *src = in.buf;
    int rc = swr_append(&self->swr, &src, (int)(in.len / 2), &out);
    PyBuffer_Release(&in);
    if (rc < 0) {
        PyMem_Free(out.data);
        return NULL;
    }
    PyObject *pcm = PyBytes_FromStringAndSize((const char *)out.data, (Py_ssize_t)out.len);
    PyMem_Free(out.data);
    return pcm;
}

static PyMethodDef Resampler_methods[] = {
    {"convert", (PyCFunction)Resampler_convert, METH_O,
     "mono s16 PCM at in_rate -> mono s16 PCM at out_rate"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ResamplerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "relay.transcode._avcodec.Resampler",
    .tp_basicsize = sizeof(Resampler),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Resampler(in_rate, out_rate): swresample for mono s16 PCM",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Resampler_init,
    .tp_dealloc = (destructor)Resampler_dealloc,
    .tp_methods = Resampler_methods,
};

/* ---- module ------------------------------------------------------------------------------- */

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "relay.transcode._avcodec",
    "libavcodec + libswresample called directly (see the C source's header).", -1, NULL,
};

PyMODINIT_FUNC
PyInit__avcodec(void)
{
    if (PyType_Ready(&DecoderType) < 0 || PyType_Ready(&EncoderType) < 0
        || PyType_Ready(&ResamplerType) < 0)
        return NULL;
    av_log_set_level(AV_LOG_QUIET); /* this copy's messages: rejected payloads raise instead */
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    Py_INCREF(&DecoderType);
    Py_INCREF(&EncoderType);
    Py_INCREF(&ResamplerType);
    if (PyModule_AddObject(m, "Decoder", (PyObject *)&DecoderType) < 0
        || PyModule_AddObject(m, "Encoder", (PyObject *)&EncoderType) < 0
        || PyModule_AddObject(m, "Resampler", (PyObject *)&ResamplerType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
