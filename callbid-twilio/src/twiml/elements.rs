//! The voice verbs and nouns added after the first fifteen: `<Connect>`,
//! `<Start>`, `<Stop>`, `<Pay>`, `<Refer>`, `<Echo>` and their nouns, and the
//! newer `<Dial>` nouns (`<Application>`, `<Sim>`, `<WhatsApp>`), with
//! attribute names, nesting and doc text taken from twilio-python 9.x
//! (`twilio/twiml/voice_response.py`).

use super::{CallProgressEvent, Method, Pause, Play, RecordingEvent, Say, Trim};
use rust_decimal::Decimal;

element! {
    /// `<Parameter>`: a custom name/value pair passed on to the remote side
    /// (Stream, Siprec, Transcription, Pay, Client, Application, ConversationRelay,
    /// VirtualAgent, Hangup, Reject).
    Parameter = "Parameter";
    fields {}
    attrs {
        /// The name of the custom parameter.
        name: String => "name",
        /// The value of the custom parameter.
        value: String => "value",
    }
}

impl Parameter {
    /// `<Parameter name="…" value="…" />`.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Parameter::default().name(name).value(value)
    }
}
impl_render!(Parameter);

element! {
    /// `<Config>` inside `<Transcription>` or `<VirtualAgent>`: a provider setting.
    Config = "Config";
    fields {}
    attrs {
        /// The name of the custom config.
        name: String => "name",
        /// The value of the custom config.
        value: String => "value",
    }
}

impl Config {
    /// `<Config name="…" value="…" />`.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Config::default().name(name).value(value)
    }
}
impl_render!(Config);

element! {
    /// `<Stream>` inside `<Connect>`, `<Start>` or `<Stop>`: forks (Start) or
    /// hands over (Connect) the call audio to a WebSocket at `url`; in `<Stop>`
    /// it names the stream to end.
    Stream = "Stream";
    fields { children: Vec<Parameter> }
    attrs {
        /// Friendly name given to the Stream.
        name: String => "name",
        /// Unique name for Stream Connector.
        connector_name: String => "connectorName",
        /// URL of the remote service where the Stream is routed.
        url: String => "url",
        /// Track to be streamed to remote service.
        track: String => "track",
        /// Status Callback URL.
        status_callback: String => "statusCallback",
        /// Status Callback URL method.
        status_callback_method: Method => "statusCallbackMethod",
        /// Required Audio Format.
        audio_format: String => "audioFormat",
        /// Sample Rate for HD Codec.
        sample_rate: u32 => "sampleRate",
    }
}
empty_new!(Stream);
impl_render!(Stream, children: children);

impl Stream {
    /// Appends a `<Parameter>` (sent in the stream's `start` message).
    #[must_use]
    pub fn parameter(mut self, p: Parameter) -> Self {
        self.children.push(p);
        self
    }
    /// The nested parameters.
    pub fn parameters(&self) -> &[Parameter] {
        &self.children
    }
}

element! {
    /// `<Siprec>` inside `<Start>` or `<Stop>`: SIPREC recording through a connector.
    Siprec = "Siprec";
    fields { children: Vec<Parameter> }
    attrs {
        /// Friendly name given to SIPREC.
        name: String => "name",
        /// Unique name for Connector.
        connector_name: String => "connectorName",
        /// Track to be streamed to remote service.
        track: String => "track",
        /// Status Callback URL.
        status_callback: String => "statusCallback",
        /// Status Callback URL method.
        status_callback_method: Method => "statusCallbackMethod",
    }
}
empty_new!(Siprec);
impl_render!(Siprec, children: children);

impl Siprec {
    /// Appends a `<Parameter>`.
    #[must_use]
    pub fn parameter(mut self, p: Parameter) -> Self {
        self.children.push(p);
        self
    }
    /// The nested parameters.
    pub fn parameters(&self) -> &[Parameter] {
        &self.children
    }
}

child_enum! {
    /// What `<Transcription>` and `<VirtualAgent>` may contain: `<Config>`, `<Parameter>`.
    ConfigChild { Config, Parameter }
}

element! {
    /// `<Transcription>` inside `<Start>` or `<Stop>`: real-time transcription,
    /// results posted to `statusCallbackUrl`.
    Transcription = "Transcription";
    fields { children: Vec<ConfigChild> }
    attrs {
        /// Friendly name given to the Transcription.
        name: String => "name",
        /// Track to be analyze by the provider.
        track: String => "track",
        /// Status Callback URL.
        status_callback_url: String => "statusCallbackUrl",
        /// Status Callback URL method.
        status_callback_method: Method => "statusCallbackMethod",
        /// Friendly name given to the Inbound Track.
        inbound_track_label: String => "inboundTrackLabel",
        /// Friendly name given to the Outbound Track Label.
        outbound_track_label: String => "outboundTrackLabel",
        /// Indicates if partial results are going to be send to the customer.
        partial_results: bool => "partialResults",
        /// Language Code used by the transcription engine.
        language_code: String => "languageCode",
        /// Transcription Engine to be used.
        transcription_engine: String => "transcriptionEngine",
        /// Enable Profanity Filter.
        profanity_filter: bool => "profanityFilter",
        /// Speech Model used by the transcription engine.
        speech_model: String => "speechModel",
        /// Hints to be provided to the transcription engine.
        hints: String => "hints",
        /// Enable Automatic Punctuation.
        enable_automatic_punctuation: bool => "enableAutomaticPunctuation",
        /// The SID or the unique name of the Intelligence Service to be used.
        intelligence_service: String => "intelligenceService",
    }
}
empty_new!(Transcription);
impl_render!(Transcription, children: children);
children!(Transcription.children: ConfigChild { config(Config), parameter(Parameter) });

element! {
    /// `<Recording>` inside `<Start>`: records the call in the background.
    Recording = "Recording";
    fields {}
    attrs {
        /// Recording Status Callback URL.
        recording_status_callback: String => "recordingStatusCallback",
        /// Recording Status Callback URL method.
        recording_status_callback_method: Method => "recordingStatusCallbackMethod",
        /// Recording Status Callback Events.
        recording_status_callback_event: Vec<RecordingEvent> => "recordingStatusCallbackEvent",
        /// Trim the recording.
        trim: Trim => "trim",
        /// To indicate which audio track should be recorded.
        track: String => "track",
        /// The recording channels for the final recording.
        channels: String => "channels",
        /// Configuration for the recording.
        recording_configuration_id: String => "recordingConfigurationId",
    }
}
empty_new!(Recording);
impl_render!(Recording);

element! {
    /// `<Room>` inside `<Connect>`: joins a Programmable Video room.
    Room = "Room";
    fields { name: String }
    attrs {
        /// Participant identity when connecting to the Room.
        participant_identity: String => "participantIdentity",
    }
}
text_new!(Room, name, "the room name");
impl_render!(Room, text: name);

element! {
    /// `<Conversation>` inside `<Connect>`: connects the call to a Conversations service.
    Conversation = "Conversation";
    fields {}
    attrs {
        /// Service instance Sid.
        service_instance_sid: String => "serviceInstanceSid",
        /// Inbound autocreation.
        inbound_autocreation: bool => "inboundAutocreation",
        /// Routing assignment timeout.
        routing_assignment_timeout: u32 => "routingAssignmentTimeout",
        /// Inbound timeout.
        inbound_timeout: u32 => "inboundTimeout",
        /// TwiML URL.
        url: String => "url",
        /// TwiML URL method.
        method: Method => "method",
        /// Record.
        record: String => "record",
        /// Trim.
        trim: Trim => "trim",
        /// Recording status callback URL.
        recording_status_callback: String => "recordingStatusCallback",
        /// Recording status callback URL method.
        recording_status_callback_method: Method => "recordingStatusCallbackMethod",
        /// Recording status callback events.
        recording_status_callback_event: Vec<RecordingEvent> => "recordingStatusCallbackEvent",
        /// Status callback URL.
        status_callback: String => "statusCallback",
        /// Status callback URL method.
        status_callback_method: Method => "statusCallbackMethod",
        /// Events to call status callback URL.
        status_callback_event: String => "statusCallbackEvent",
    }
}
empty_new!(Conversation);
impl_render!(Conversation);

element! {
    /// `<VirtualAgent>` inside `<Connect>`: a Dialogflow CX virtual agent.
    VirtualAgent = "VirtualAgent";
    fields { children: Vec<ConfigChild> }
    attrs {
        /// Defines the conversation profile Dialogflow needs to use.
        connector_name: String => "connectorName",
        /// Language to be used by Dialogflow to transcribe speech.
        language: String => "language",
        /// Whether sentiment analysis needs to be enabled or not.
        sentiment_analysis: bool => "sentimentAnalysis",
        /// URL to post status callbacks from Twilio.
        status_callback: String => "statusCallback",
        /// HTTP method to use when requesting the status callback URL.
        status_callback_method: Method => "statusCallbackMethod",
    }
}
empty_new!(VirtualAgent);
impl_render!(VirtualAgent, children: children);
children!(VirtualAgent.children: ConfigChild { config(Config), parameter(Parameter) });

element! {
    /// `<Language>` inside `<ConversationRelay>`: settings for one language.
    Language = "Language";
    fields {}
    attrs {
        /// Language code of this language setting is for.
        code: String => "code",
        /// Provider to be used for text-to-speech of this language.
        tts_provider: String => "ttsProvider",
        /// Voice to be used for text-to-speech of this language.
        voice: String => "voice",
        /// Provider to be used for transcription of this language.
        transcription_provider: String => "transcriptionProvider",
        /// Speech model to be used for transcription of this language.
        speech_model: String => "speechModel",
        /// Phrases to help better accuracy in speech recognition of this language.
        hints: String => "hints",
        /// Whether smart formatting should be applied to transcripts of this language.
        asr_smart_format: String => "asrSmartFormat",
        /// Text normalization for text-to-speech of this language. The value can be auto, on, or off.
        tts_text_normalization: String => "ttsTextNormalization",
        /// Whether language-specific text normalization should be applied for text-to-speech of this language.
        tts_language_text_normalization: String => "ttsLanguageTextNormalization",
    }
}
empty_new!(Language);
impl_render!(Language);

child_enum! {
    /// What `<ConversationRelay>` may contain: `<Language>`, `<Parameter>`.
    ConversationRelayChild { Language, Parameter }
}

element! {
    /// `<ConversationRelay>` inside `<Connect>`: speech-to-text and
    /// text-to-speech between the caller and a WebSocket at `url`.
    ConversationRelay = "ConversationRelay";
    fields { children: Vec<ConversationRelayChild> }
    attrs {
        /// URL of the remote service where the session is connected to.
        url: String => "url",
        /// Language to be used for both text-to-speech and transcription.
        language: String => "language",
        /// Language to be used for text-to-speech.
        tts_language: String => "ttsLanguage",
        /// Language to be used for transcription.
        transcription_language: String => "transcriptionLanguage",
        /// Provider to be used for text-to-speech.
        tts_provider: String => "ttsProvider",
        /// Voice to be used for text-to-speech.
        voice: String => "voice",
        /// Provider to be used for transcription.
        transcription_provider: String => "transcriptionProvider",
        /// Speech model to be used for transcription.
        speech_model: String => "speechModel",
        /// Whether profanities should be filtered out of the speech transcription.
        profanity_filter: bool => "profanityFilter",
        /// Whether DTMF tones should be detected and reported in speech transcription.
        dtmf_detection: bool => "dtmfDetection",
        /// The sentence to be played automatically when the session is connected.
        welcome_greeting: String => "welcomeGreeting",
        /// Whether partial prompts should be reported to WebSocket server before the caller finishes speaking.
        partial_prompts: bool => "partialPrompts",
        /// "Whether and how the input from a caller, such as speaking or DTMF can interrupt the welcome greeting.
        welcome_greeting_interruptible: String => "welcomeGreetingInterruptible",
        /// Whether and how the input from a caller, such as speaking or DTMF can interrupt the play of text-to-speech.
        interruptible: String => "interruptible",
        /// Whether subsequent text-to-speech or play media can interrupt the on-going play of text-to-speech or media.
        preemptible: bool => "preemptible",
        /// Phrases to help better accuracy in speech recognition of these pharases.
        hints: String => "hints",
        /// The Conversational Intelligence Service id or unique name to be used for the session.
        intelligence_service: String => "intelligenceService",
        /// Whether prompts should be reported to WebSocket server when text-to-speech playing and interrupt is disabled.
        report_input_during_agent_speech: String => "reportInputDuringAgentSpeech",
        /// When using ElevenLabs as TTS provider, this parameter allows you to enable or disable its text normalization feature.
        elevenlabs_text_normalization: String => "elevenlabsTextNormalization",
        /// Set the sensitivity of the interrupt feature for speech. The value can be low, medium, or high.
        interrupt_sensitivity: String => "interruptSensitivity",
        /// Multiple debug options to be used for troubleshooting.
        debug: String => "debug",
        /// This parameters enables background noise filtering on the audio stream before it reaches the STT engine, improving transcription accuracy in noisy environments.
        background_noise_reduction: String => "backgroundNoiseReduction",
        /// Set the duration of silence that indicates the end of speech.
        speech_timeout: String => "speechTimeout",
        /// This parameter enables Deepgram's smart formatting feature, which automatically applies punctuation, capitalization, and formatting (e.g. numbers, dates, currency) to transcripts.
        deepgram_smart_format: String => "deepgramSmartFormat",
        /// This parameter brief caller acknowledgments (e.g. "yeah", "uh-huh") are ignored and will not interrupt the agent while it is speaking.
        ignore_backchannel: String => "ignoreBackchannel",
        /// This parameter allows you to enable event subscriptions.
        events: String => "events",
        /// Whether the in-progress partial transcript should be reported as a prompt when the call hangs up.
        partial_prompt_on_hangup: String => "partialPromptOnHangup",
        /// Eager end-of-turn confidence threshold, which fires before the end-of-turn threshold. The value can be between 0.3 and 0.9.
        eager_eot_threshold: String => "eagerEotThreshold",
        /// Whether smart formatting should be applied to transcripts. Takes precedence over deepgramSmartFormat.
        asr_smart_format: String => "asrSmartFormat",
        /// Text normalization for text-to-speech. The value can be auto, on, or off. Takes precedence over elevenlabsTextNormalization.
        tts_text_normalization: String => "ttsTextNormalization",
        /// Whether language-specific text normalization should be applied for text-to-speech.
        tts_language_text_normalization: String => "ttsLanguageTextNormalization",
        /// Legacy alias of ttsLanguageTextNormalization.
        elevenlabs_language_text_normalization: String => "elevenlabsLanguageTextNormalization",
        /// Extra fields to be included in prompt messages. The value can be turn-state or prompt-segments.
        include_in_prompt: String => "includeInPrompt",
        /// Customer name sent to Conversations and Conversational Intelligence. Defaults to the caller ID.
        customer_name: String => "customerName",
        /// Whether the WebSocket connection to the application should be reconnected if it drops during the call. Defaults to false.
        application_reconnect: String => "applicationReconnect",
        /// Whether transcripts that echo the agent's own text-to-speech should be dropped. Defaults to false.
        echo_prompt_filtering: String => "echoPromptFiltering",
        /// Whether turn detection should be used to decide when the caller has finished speaking. Defaults to false.
        turn_detection: String => "turnDetection",
    }
}
empty_new!(ConversationRelay);
impl_render!(ConversationRelay, children: children);
children!(ConversationRelay.children: ConversationRelayChild { language_setting(Language), parameter(Parameter) });

child_enum! {
    /// What `<Connect>` may contain: `<Room>`, `<Stream>`, `<VirtualAgent>`,
    /// `<Conversation>`, `<ConversationRelay>`.
    ConnectNoun { Room, Stream, VirtualAgent, Conversation, ConversationRelay }
}

element! {
    /// `<Connect>`: hands the call to a media stream, video room, virtual agent,
    /// Conversations service or ConversationRelay; the TwiML after it runs when
    /// that ends (or `action` is requested).
    Connect = "Connect";
    fields { children: Vec<ConnectNoun> }
    attrs {
        /// Action URL.
        action: String => "action",
        /// Action URL method.
        method: Method => "method",
    }
}
empty_new!(Connect);
impl_render!(Connect, children: children);
children!(Connect.children: ConnectNoun {
    room(Room),
    stream(Stream),
    virtual_agent(VirtualAgent),
    conversation(Conversation),
    conversation_relay(ConversationRelay),
});

child_enum! {
    /// What `<Start>` may contain: `<Stream>`, `<Siprec>`, `<Transcription>`, `<Recording>`.
    StartNoun { Stream, Siprec, Transcription, Recording }
}

element! {
    /// `<Start>`: starts something in the background (media stream, SIPREC,
    /// transcription, recording) and goes on with the next verb at once.
    Start = "Start";
    fields { children: Vec<StartNoun> }
    attrs {
        /// Action URL.
        action: String => "action",
        /// Action URL method.
        method: Method => "method",
    }
}
empty_new!(Start);
impl_render!(Start, children: children);
children!(Start.children: StartNoun {
    stream(Stream),
    siprec(Siprec),
    transcription(Transcription),
    recording(Recording),
});

child_enum! {
    /// What `<Stop>` may contain: `<Stream>`, `<Siprec>`, `<Transcription>`.
    StopNoun { Stream, Siprec, Transcription }
}

element! {
    /// `<Stop>`: stops a background stream, SIPREC session or transcription
    /// started by `<Start>` (named by the noun's `name`).
    Stop = "Stop";
    fields { children: Vec<StopNoun> }
    attrs {}
}
empty_new!(Stop);
impl_render!(Stop, children: children);
children!(Stop.children: StopNoun {
    stream(Stream),
    siprec(Siprec),
    transcription(Transcription),
});

child_enum! {
    /// What `<Prompt>` may contain: `<Say>`, `<Play>`, `<Pause>`.
    PromptChild { Say, Play, Pause }
}

element! {
    /// `<Prompt>` inside `<Pay>`: what to play when asking for one payment field.
    Prompt = "Prompt";
    fields { children: Vec<PromptChild> }
    attrs {
        /// Name of the payment source data element.
        for_: String => "for",
        /// Type of error.
        error_type: String => "errorType",
        /// Type of the credit card.
        card_type: String => "cardType",
        /// Current attempt count.
        attempt: String => "attempt",
        /// Require customer to input requested information twice and verify matching.
        require_matching_inputs: String => "requireMatchingInputs",
    }
}
empty_new!(Prompt);
impl_render!(Prompt, children: children);
children!(Prompt.children: PromptChild { say(Say), play(Play), pause(Pause) });

child_enum! {
    /// What `<Pay>` may contain: `<Prompt>`, `<Parameter>`.
    PayChild { Prompt, Parameter }
}

element! {
    /// `<Pay>`: collects card or bank details through a payment connector.
    /// `chargeAmount` is a decimal amount (never a float), rendered with its
    /// scale (`10.00`).
    Pay = "Pay";
    fields { children: Vec<PayChild> }
    attrs {
        /// Input type Twilio should accept.
        input: String => "input",
        /// Action URL.
        action: String => "action",
        /// Bank account type for ach transactions. If set, payment method attribute must be provided and value should be set to ach-debit. defaults to consumer-checking.
        bank_account_type: String => "bankAccountType",
        /// Status callback URL.
        status_callback: String => "statusCallback",
        /// Status callback method.
        status_callback_method: Method => "statusCallbackMethod",
        /// Time to wait to gather input.
        timeout: u32 => "timeout",
        /// Maximum number of allowed retries when gathering input.
        max_attempts: u32 => "maxAttempts",
        /// Prompt for security code.
        security_code: bool => "securityCode",
        /// Prompt for postal code and it should be true/false or default postal code.
        postal_code: String => "postalCode",
        /// Prompt for minimum postal code length.
        min_postal_code_length: u32 => "minPostalCodeLength",
        /// Unique name for payment connector.
        payment_connector: String => "paymentConnector",
        /// Payment method to be used. defaults to credit-card.
        payment_method: String => "paymentMethod",
        /// Type of token.
        token_type: String => "tokenType",
        /// Amount to process. If value is greater than 0 then make the payment else create a payment token.
        charge_amount: Decimal => "chargeAmount",
        /// Currency of the amount attribute.
        currency: String => "currency",
        /// Details regarding the payment.
        description: String => "description",
        /// Comma separated accepted card types.
        valid_card_types: String => "validCardTypes",
        /// Language to use.
        language: String => "language",
    }
}
empty_new!(Pay);
impl_render!(Pay, children: children);
children!(Pay.children: PayChild { prompt(Prompt), parameter(Parameter) });

element! {
    /// `<Sip>` inside `<Refer>`: the SIP URI to transfer the call to (twilio-python's
    /// `ReferSip`; rendered as `<Sip>`).
    ReferSip = "Sip";
    fields { sip_url: String }
    attrs {}
}
text_new!(ReferSip, sip_url, "the SIP URI");
impl_render!(ReferSip, text: sip_url);

element! {
    /// `<Refer>`: transfers a SIP call away with SIP REFER.
    Refer = "Refer";
    fields { children: Vec<ReferSip> }
    attrs {
        /// Action URL.
        action: String => "action",
        /// Action URL method.
        method: Method => "method",
    }
}
empty_new!(Refer);
impl_render!(Refer, children: children);

impl Refer {
    /// Appends the `<Sip>` target.
    #[must_use]
    pub fn sip(mut self, sip: ReferSip) -> Self {
        self.children.push(sip);
        self
    }
    /// The nested targets.
    pub fn children(&self) -> &[ReferSip] {
        &self.children
    }
}

element! {
    /// `<Echo>`: plays the caller's audio back (testing).
    Echo = "Echo";
    fields {}
    attrs {}
}
empty_new!(Echo);
impl_render!(Echo);

element! {
    /// `<ApplicationSid>` inside `<Application>`: the TwiML App to call.
    ApplicationSid = "ApplicationSid";
    fields { sid: String }
    attrs {}
}
text_new!(ApplicationSid, sid, "the application SID (`AP…`)");
impl_render!(ApplicationSid, text: sid);

child_enum! {
    /// What `<Application>` may contain: `<ApplicationSid>`, `<Parameter>`.
    ApplicationChild { ApplicationSid, Parameter }
}

element! {
    /// `<Application>` inside `<Dial>`: calls a TwiML App (its SID as text or in
    /// a nested `<ApplicationSid>`).
    Application = "Application";
    fields { application_sid: String, children: Vec<ApplicationChild> }
    attrs {
        /// TwiML URL.
        url: String => "url",
        /// TwiML URL Method.
        method: Method => "method",
        /// Events to trigger status callback.
        status_callback_event: Vec<CallProgressEvent> => "statusCallbackEvent",
        /// Status Callback URL.
        status_callback: String => "statusCallback",
        /// Status Callback URL Method.
        status_callback_method: Method => "statusCallbackMethod",
        /// Identity of the customer calling application.
        customer_id: String => "customerId",
        /// Copy parent call To field to called application side, otherwise use the application sid as To field.
        copy_parent_to: bool => "copyParentTo",
    }
}
impl_render!(Application, text: application_sid, children: children);
children!(Application.children: ApplicationChild { sid(ApplicationSid), parameter(Parameter) });

impl Application {
    /// `<Application>` with the SID as text (an empty string writes none; then
    /// add an [`ApplicationSid`]).
    pub fn new(application_sid: impl Into<String>) -> Self {
        Application {
            application_sid: application_sid.into(),
            ..Default::default()
        }
    }
}

element! {
    /// `<Sim>` inside `<Dial>`: a Programmable Wireless SIM.
    Sim = "Sim";
    fields { sim_sid: String }
    attrs {}
}
text_new!(Sim, sim_sid, "the SIM SID (`DE…`)");
impl_render!(Sim, text: sim_sid);

element! {
    /// `<WhatsApp>` inside `<Dial>`: a WhatsApp voice call.
    WhatsApp = "WhatsApp";
    fields { phone_number: String }
    attrs {
        /// TwiML URL.
        url: String => "url",
        /// TwiML URL Method.
        method: Method => "method",
        /// Events to trigger status callback.
        status_callback_event: String => "statusCallbackEvent",
        /// Status Callback URL.
        status_callback: String => "statusCallback",
        /// Status Callback URL Method.
        status_callback_method: Method => "statusCallbackMethod",
    }
}
text_new!(WhatsApp, phone_number, "the WhatsApp number (E.164)");
impl_render!(WhatsApp, text: phone_number);

element! {
    /// `<Identity>` inside `<Client>`: the client identity (instead of text).
    Identity = "Identity";
    fields { client_identity: String }
    attrs {}
}
text_new!(Identity, client_identity, "the client identity");
impl_render!(Identity, text: client_identity);

element! {
    /// `<Uri>` inside `<Sip>`: one SIP URI of several, with priority and weight
    /// (twilio-python's `SipUri`).
    SipUri = "Uri";
    fields { sip_url: String }
    attrs {
        /// The priority of this SIP URI.
        priority: u32 => "priority",
        /// The weight of this SIP URI.
        weight: u32 => "weight",
        /// The username for authentication.
        username: String => "username",
        /// The password for authentication.
        password: String => "password",
    }
}
text_new!(SipUri, sip_url, "the SIP URI");
impl_render!(SipUri, text: sip_url);

element! {
    /// `<Header>` inside `<Headers>`: one custom SIP header.
    Header = "Header";
    fields {}
    attrs {
        /// The name of the custom header.
        name: String => "name",
        /// The value of the custom header.
        value: String => "value",
    }
}

impl Header {
    /// `<Header name="…" value="…" />`.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Header::default().name(name).value(value)
    }
}
impl_render!(Header);

element! {
    /// `<Headers>` inside `<Sip>`: custom SIP headers. (The older way, which
    /// still works, puts `X-` headers in the URI's query: `sip:a@b?X-Name=v`.)
    Headers = "Headers";
    fields { children: Vec<Header> }
    attrs {}
}
empty_new!(Headers);
impl_render!(Headers, children: children);

impl Headers {
    /// Appends a `<Header>`.
    #[must_use]
    pub fn header(mut self, h: Header) -> Self {
        self.children.push(h);
        self
    }
    /// The nested headers.
    pub fn children(&self) -> &[Header] {
        &self.children
    }
}

child_enum! {
    /// What `<Client>` may contain: `<Identity>`, `<Parameter>`.
    ClientChild { Identity, Parameter }
}

child_enum! {
    /// What `<Sip>` (in `<Dial>`) may contain: `<Uri>` ([`SipUri`]), `<Headers>`.
    SipChild { SipUri, Headers }
}
